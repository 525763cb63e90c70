// ctoken benchmarks: counting heap allocations, shared by ctoken_bench and ctoken_bench_time.
//
// This header replaces the global allocation functions (every form of operator new and
// operator delete) with versions that count each allocation and take the memory from malloc.
// Replacement allocation functions may not be inline, so the header defines them as ordinary
// functions: include it in exactly one translation unit of a program (each benchmark program is
// a single .cpp file). Replacing them in the executable also covers the allocations made inside
// shared libraries (libstdc++, libbenchmark), since those bind to these definitions.
//
// What a program reads: alloc_counter::allocations(), the number of allocations made *by the
// calling thread* so far. A measurement takes the difference across the code it measures.
#ifndef CTOKEN_BENCHMARKS_ALLOC_COUNTER_HPP
#define CTOKEN_BENCHMARKS_ALLOC_COUNTER_HPP

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace alloc_counter {

// Allocations made by the current thread so far (bumped by every operator new below).
//
// One counter per thread rather than one for the process: a shared counter costs a locked
// read-modify-write and a contended cache line on every allocation, which would be charged
// only to the variants that allocate and would couple the threads of a multi-threaded row.
// Only the owning thread writes its counter, so a relaxed load + store is an exact increment
// without a locked instruction; it stays an atomic so that reading it elsewhere is race-free.
// A measurement that spans threads adds up what each thread counted itself.
inline thread_local std::atomic<std::uint64_t> t_allocations{0};

inline void count_allocation() noexcept {
  t_allocations.store(t_allocations.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

// The number of allocations the calling thread has made so far.
inline std::uint64_t allocations() noexcept { return t_allocations.load(std::memory_order_relaxed); }

namespace detail {

// Every form of operator new counts one allocation and takes its memory from malloc (or
// posix_memalign for over-aligned requests); every form of operator delete gives it back with
// free.
inline void* allocate(std::size_t size) {
  count_allocation();
  if (size == 0) size = 1;
  for (;;) {
    if (void* p = std::malloc(size)) return p;
    const std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}

inline void* allocate_aligned(std::size_t size, std::align_val_t alignment) {
  count_allocation();
  if (size == 0) size = 1;
  const std::size_t align = std::max(static_cast<std::size_t>(alignment), sizeof(void*));
  for (;;) {
    void* p = nullptr;
    if (posix_memalign(&p, align, size) == 0) return p;
    const std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}

template <class Allocate>
void* allocate_nothrow(Allocate&& allocate_or_throw) noexcept {
  try {
    return allocate_or_throw();
  } catch (...) {
    return nullptr;
  }
}

}  // namespace detail
}  // namespace alloc_counter

// ---- the replacements (one definition per program: see the top of this file) -------------------

void* operator new(std::size_t size) { return alloc_counter::detail::allocate(size); }
void* operator new[](std::size_t size) { return alloc_counter::detail::allocate(size); }
void* operator new(std::size_t size, std::align_val_t alignment) {
  return alloc_counter::detail::allocate_aligned(size, alignment);
}
void* operator new[](std::size_t size, std::align_val_t alignment) {
  return alloc_counter::detail::allocate_aligned(size, alignment);
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  return alloc_counter::detail::allocate_nothrow([size] { return alloc_counter::detail::allocate(size); });
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return alloc_counter::detail::allocate_nothrow([size] { return alloc_counter::detail::allocate(size); });
}
void* operator new(std::size_t size, std::align_val_t alignment, const std::nothrow_t&) noexcept {
  return alloc_counter::detail::allocate_nothrow(
      [size, alignment] { return alloc_counter::detail::allocate_aligned(size, alignment); });
}
void* operator new[](std::size_t size, std::align_val_t alignment, const std::nothrow_t&) noexcept {
  return alloc_counter::detail::allocate_nothrow(
      [size, alignment] { return alloc_counter::detail::allocate_aligned(size, alignment); });
}

void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }

#endif  // CTOKEN_BENCHMARKS_ALLOC_COUNTER_HPP
