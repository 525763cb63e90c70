// Cancelling Asio operations with a ctoken token: a read that would wait forever and a long
// timer, both aborted with asio::error::operation_aborted when the token is cancelled.
#include <ctoken/asio.hpp>
#include <ctoken/ctoken.hpp>

#include <asio/io_context.hpp>
#include <asio/local/connect_pair.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>

#include <array>
#include <cstdio>
#include <thread>

int main() {
  asio::io_context io;
  ctoken::CancellationTokenSource request;  // e.g. the request whose client went away

  // A socket whose peer never writes: async_read would wait forever.
  asio::local::stream_protocol::socket ours(io);
  asio::local::stream_protocol::socket peer(io);
  asio::local::connect_pair(ours, peer);
  std::array<char, 64> buffer{};
  ctoken::AsioCancellation cancel_read(request.Token(), io.get_executor());
  asio::async_read(ours, asio::buffer(buffer), cancel_read.Bind([](std::error_code ec, std::size_t n) {
    std::printf("read: %s after %zu bytes\n", ec.message().c_str(), n);
  }));

  // A one-hour timer.
  asio::steady_timer timer(io, std::chrono::hours(1));
  ctoken::AsioCancellation cancel_timer(request.Token(), io.get_executor());
  timer.async_wait(cancel_timer.Bind([](std::error_code ec) { std::printf("timer: %s\n", ec.message().c_str()); }));

  // Somebody else cancels the token, on another thread.
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    request.Cancel(ctoken::errc::client_disconnected);
  });
  io.run();  // returns when both operations completed
  canceller.join();
  return 0;
}
