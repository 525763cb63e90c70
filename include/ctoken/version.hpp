// ctoken — the library's version, for the preprocessor and at run time.
//
// This header is the single source of the version: the top-level CMakeLists.txt reads the three
// numbers from it for project(VERSION), so ctokenConfigVersion.cmake and ctoken.pc agree with it.
#ifndef CTOKEN_VERSION_HPP
#define CTOKEN_VERSION_HPP

/// Major version: changes when a release breaks source compatibility (after a deprecation
/// period of one release for renamed names).
#define CTOKEN_VERSION_MAJOR 0
/// Minor version: new features, source compatible within the same major version.
#define CTOKEN_VERSION_MINOR 1
/// Patch version: fixes only.
#define CTOKEN_VERSION_PATCH 0

// Helpers for CTOKEN_VERSION_STRING, not part of the API.
#define CTOKEN_DETAIL_STRINGIZE_(x) #x
#define CTOKEN_DETAIL_STRINGIZE(x) CTOKEN_DETAIL_STRINGIZE_(x)

/// The version as a string literal, "MAJOR.MINOR.PATCH" (e.g. "0.1.0").
#define CTOKEN_VERSION_STRING                   \
  CTOKEN_DETAIL_STRINGIZE(CTOKEN_VERSION_MAJOR) \
  "." CTOKEN_DETAIL_STRINGIZE(CTOKEN_VERSION_MINOR) "." CTOKEN_DETAIL_STRINGIZE(CTOKEN_VERSION_PATCH)

/// The version as one comparable number, MAJOR * 10000 + MINOR * 100 + PATCH (0.1.0 is 100), for
/// `#if CTOKEN_VERSION >= 200` in code that supports several releases.
#define CTOKEN_VERSION (CTOKEN_VERSION_MAJOR * 10000 + CTOKEN_VERSION_MINOR * 100 + CTOKEN_VERSION_PATCH)

#endif
