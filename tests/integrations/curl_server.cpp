// <ctoken/curl.hpp> against the example HTTP server (examples/http/server/), in-process: a
// transfer cancelled while the server's handler works returns at once, and the server sees the
// cancellation cross the wire as a closed connection: the handler's token is cancelled with
// client_disconnected and the request is logged 499.
#include <ctoken/ctoken.hpp>
#include <ctoken/curl.hpp>

#include <curl/curl.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ctoken_test.hpp"
#include "observer.hpp"
#include "server.hpp"

namespace {

using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

// Records what the server reports; thread-safe (the server calls it from its threads).
class recorder : public http::observer {
 public:
  void request_started(const http::request&, std::string_view) override {
    started_.fetch_add(1, std::memory_order_acq_rel);
  }
  void request_finished(const http::request& req, std::string_view peer,
                        const http::request_outcome& outcome) override {
    const std::lock_guard<std::mutex> lock(mutex_);
    outcomes_.push_back(outcome);
    lines_.push_back(http::access_log_line(req, peer, outcome));
  }
  int started() const noexcept { return started_.load(std::memory_order_acquire); }
  std::size_t finished() const {
    const std::lock_guard<std::mutex> lock(mutex_);
    return outcomes_.size();
  }
  http::request_outcome outcome(std::size_t i) const {
    const std::lock_guard<std::mutex> lock(mutex_);
    return outcomes_.at(i);
  }
  std::string line(std::size_t i) const {
    const std::lock_guard<std::mutex> lock(mutex_);
    return lines_.at(i);
  }

 private:
  std::atomic<int> started_{0};  // acq_rel/acquire: a count the test polls
  mutable std::mutex mutex_;
  std::vector<http::request_outcome> outcomes_;  // guarded by mutex_
  std::vector<std::string> lines_;               // guarded by mutex_
};

// /work: up to 10 s of work that stops as soon as its token is cancelled; /hello answers.
http::response handle(const http::request& req, const ctoken::CancellationToken& token) {
  if (req.path == "/hello") return http::response::text(200, "hello\n");
  if (req.path != "/work") return http::response::text(404, "not found\n");
  token.WaitFor(std::chrono::seconds(10));
  token.ThrowIfCancellationRequested();
  return http::response::text(200, "done\n");
}

size_t collect(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

}  // namespace

TEST_CASE("curl: a call to the example server cancelled while it works is logged 499 there") {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  recorder events;
  http::server_config config;  // 127.0.0.1, an ephemeral port
  http::server server(config, handle, events);
  const std::uint16_t port = server.start();
  const std::string base = "http://127.0.0.1:" + std::to_string(port);

  CURL* easy = curl_easy_init();
  REQUIRE(easy != nullptr);
  std::string body;
  const std::string work = base + "/work";
  curl_easy_setopt(easy, CURLOPT_URL, work.c_str());
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &collect);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 30000L);

  ctoken::CancellationTokenSource call;
  std::atomic<std::int64_t> cancelled_ns{0};  // release/acquire: read after the join
  std::thread canceller([&] {
    REQUIRE(ctoken_test::eventually([&] { return events.started() == 1; }));  // the handler runs
    std::this_thread::sleep_for(milliseconds(50));
    cancelled_ns.store(http::monotonic_ns(), std::memory_order_release);
    call.Cancel();
  });
  std::error_code why;
  const CURLcode rc = ctoken::curl::Perform(easy, call.Token(), why);
  const std::int64_t returned_ns = http::monotonic_ns();
  canceller.join();
  const std::int64_t t0 = cancelled_ns.load(std::memory_order_acquire);
  REQUIRE(rc == CURLE_ABORTED_BY_CALLBACK);
  CHECK(why == ctoken::errc::canceled);
  CHECK(returned_ns - t0 < 500 * 1000 * 1000);  // generous; the figure is in the benchmarks
  CHECK(body.empty());

  // The server noticed the closed connection and stopped the handler: 499, client_disconnected.
  REQUIRE(ctoken_test::eventually([&] { return events.finished() == 1; }));
  const http::request_outcome outcome = events.outcome(0);
  CHECK(outcome.status == 499);
  CHECK(outcome.reason == ctoken::errc::client_disconnected);
  CHECK(!outcome.completed);
  CHECK(outcome.cancelled_ns >= t0);
  CHECK(outcome.cancelled_ns - t0 < 500 * 1000 * 1000);
  INFO(events.line(0));
  CHECK(events.line(0).find(" 499 ") != std::string::npos);

  // The same handle, reused: a normal answer.
  const std::string hello = base + "/hello";
  curl_easy_setopt(easy, CURLOPT_URL, hello.c_str());
  body.clear();
  CHECK(ctoken::curl::Perform(easy, ctoken::CancellationToken::None()) == CURLE_OK);
  CHECK(body == "hello\n");
  REQUIRE(ctoken_test::eventually([&] { return events.finished() == 2; }));
  CHECK(events.outcome(1).status == 200);

  curl_easy_cleanup(easy);
  server.request_shutdown();
  CHECK(server.wait());
  ctoken::curl::ReleaseThreadResources();
  curl_global_cleanup();
}
