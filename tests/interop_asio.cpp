// Asio cancellation slots driven by a CancellationToken (standalone Asio).
#include <ctoken/asio.hpp>
#include <ctoken/ctoken.hpp>

#include <asio/io_context.hpp>
#include <asio/local/connect_pair.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>

#include <array>
#include <chrono>
#include <thread>

#include "ctoken_test.hpp"

using ctoken::CancellationTokenSource;
using namespace std::chrono_literals;

TEST_CASE("cancelling the token aborts a pending steady_timer wait") {
  asio::io_context io;
  asio::steady_timer timer(io, 1h);
  CancellationTokenSource source;
  ctoken::AsioCancellation cancel(source.Token(), io.get_executor());
  std::error_code result;
  bool completed = false;
  timer.async_wait(cancel.Bind([&](std::error_code ec) {
    result = ec;
    completed = true;
  }));
  std::thread canceller([&] {
    std::this_thread::sleep_for(20ms);
    source.Cancel();
  });
  const auto start = std::chrono::steady_clock::now();
  io.run();  // returns once the wait completed: it was the only work
  canceller.join();
  CHECK(completed);
  CHECK(result == asio::error::operation_aborted);
  CHECK(std::chrono::steady_clock::now() - start < 30s);
}

TEST_CASE("cancelling the token aborts a pending async_read on a real socket pair") {
  asio::io_context io;
  asio::local::stream_protocol::socket a(io);
  asio::local::stream_protocol::socket b(io);
  asio::local::connect_pair(a, b);
  CancellationTokenSource source;
  ctoken::AsioCancellation cancel(source.Token(), io.get_executor());
  std::array<char, 16> buf{};
  std::error_code result;
  std::size_t got = 99;
  asio::async_read(a, asio::buffer(buf), cancel.Bind([&](std::error_code ec, std::size_t n) {
    result = ec;
    got = n;
  }));
  // Half of the data arrives, the rest never does: only cancellation can end the read.
  asio::write(b, asio::buffer("12345678", 8));
  std::thread canceller([&] {
    std::this_thread::sleep_for(20ms);
    source.Cancel(ctoken::errc::client_disconnected);
  });
  io.run();
  canceller.join();
  CHECK(result == asio::error::operation_aborted);
  CHECK(got == 8);
}

TEST_CASE("an operation started after the token was cancelled is aborted at once") {
  asio::io_context io;
  asio::steady_timer timer(io, 1h);
  CancellationTokenSource source;
  source.Cancel();
  ctoken::AsioCancellation cancel(source.Token(), io.get_executor());
  std::error_code result;
  timer.async_wait(cancel.Bind([&](std::error_code ec) { result = ec; }));
  io.run();
  CHECK(result == asio::error::operation_aborted);
}

TEST_CASE("an operation that completes first is not affected, and the object can be reused") {
  asio::io_context io;
  CancellationTokenSource source;
  ctoken::AsioCancellation cancel(source.Token(), io.get_executor());
  asio::steady_timer quick(io, 1ms);
  std::error_code first = asio::error::operation_aborted;
  quick.async_wait(cancel.Bind([&](std::error_code ec) { first = ec; }));
  io.run();
  CHECK_FALSE(first);
  io.restart();
  asio::steady_timer slow(io, 1h);
  std::error_code second;
  slow.async_wait(cancel.Bind([&](std::error_code ec) { second = ec; }));
  asio::post(io, [&] { source.Cancel(); });
  io.run();
  CHECK(second == asio::error::operation_aborted);
}
