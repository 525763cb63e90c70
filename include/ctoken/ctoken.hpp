// ctoken — the umbrella header: everything in the API contract that needs only C++17.
//
// The optional interop headers are not included here: <ctoken/stop_token.hpp> and
// <ctoken/coro.hpp> (C++20), <ctoken/asio.hpp> (needs Asio) and <ctoken/fd.hpp> (POSIX).
#ifndef CTOKEN_CTOKEN_HPP
#define CTOKEN_CTOKEN_HPP

#include <ctoken/errc.hpp>
#include <ctoken/exception.hpp>
#include <ctoken/registration.hpp>
#include <ctoken/source.hpp>
#include <ctoken/time.hpp>
#include <ctoken/token.hpp>
#include <ctoken/version.hpp>
#include <ctoken/wait.hpp>

#endif
