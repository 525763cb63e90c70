// <ctoken/curl.hpp> against the real libcurl and tiny scripted servers on 127.0.0.1: every
// phase of a transfer that loopback can provoke is cancelled and must return promptly, close
// its connection (the server sees it) and leave the easy handle reusable.
#include <ctoken/ctoken.hpp>
#include <ctoken/curl.hpp>

#include <ctoken/process.hpp>

#include <curl/curl.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "ctoken_test.hpp"
#include "curl_loopback.hpp"

namespace {

using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;
using curl_test::behaviour;

// Generous: the real figure (tens of microseconds) is in benchmarks/integrations/curl_bench.cpp.
constexpr milliseconds kPrompt{500};

// The main thread's multi handle (a thread_local) is destroyed when main returns, before
// static objects like this one, so the global cleanup here comes after it.
struct global_init {
  global_init() { curl_global_init(CURL_GLOBAL_DEFAULT); }
  ~global_init() { curl_global_cleanup(); }
};
const global_init curl_initialised;

struct easy_handle {
  CURL* h = curl_easy_init();
  std::string body;
  easy_handle() {
    REQUIRE(h != nullptr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &easy_handle::on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, this);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);  // a broken cancellation fails, never hangs
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  }
  easy_handle(const easy_handle&) = delete;
  easy_handle& operator=(const easy_handle&) = delete;
  ~easy_handle() { curl_easy_cleanup(h); }
  void url(const std::string& u) { curl_easy_setopt(h, CURLOPT_URL, u.c_str()); }
  static size_t on_write(char* data, size_t size, size_t count, void* self) {
    static_cast<easy_handle*>(self)->body.append(data, size * count);
    return size * count;
  }
};

// After a cancelled transfer: the same handle fetches from a server that answers.
void check_reusable(easy_handle& easy) {
  curl_test::server ok(behaviour::answer);
  easy.url(ok.url());
  curl_easy_setopt(easy.h, CURLOPT_HTTPGET, 1L);
  easy.body.clear();
  std::error_code why;
  REQUIRE(ctoken::curl::Perform(easy.h, ctoken::CancellationToken::None(), why) == CURLE_OK);
  CHECK(easy.body == "ok");
  CHECK(!why);
  long status = 0;
  curl_easy_getinfo(easy.h, CURLINFO_RESPONSE_CODE, &status);
  CHECK(status == 200);
}

// Starts the transfer set up on `easy`, cancels the token (reason `reason`) once `reached()`
// holds plus `settle`, and checks the call returned promptly with CURLE_ABORTED_BY_CALLBACK.
template <class Reached>
void cancel_when(easy_handle& easy, Reached reached, milliseconds settle,
                 std::error_code reason = ctoken::errc::client_disconnected) {
  ctoken::CancellationTokenSource source;
  std::atomic<std::int64_t> cancelled_at{0};  // release/acquire: the stamp is read after join
  std::thread canceller([&] {
    REQUIRE(ctoken_test::eventually(reached));
    std::this_thread::sleep_for(settle);
    cancelled_at.store(steady::now().time_since_epoch().count(), std::memory_order_release);
    source.Cancel(reason);
  });
  std::error_code why;
  const CURLcode rc = ctoken::curl::Perform(easy.h, source.Token(), why);
  const auto returned = steady::now();
  canceller.join();
  const steady::time_point t0{steady::duration(cancelled_at.load(std::memory_order_acquire))};
  INFO("curl said: " << curl_easy_strerror(rc));
  REQUIRE(rc == CURLE_ABORTED_BY_CALLBACK);
  CHECK(why == reason);
  CHECK(returned - t0 < kPrompt);
  if (std::getenv("CTOKEN_CURL_TEST_VERBOSE") != nullptr) {
    std::printf("cancel -> return: %lld us\n",
                static_cast<long long>(std::chrono::duration_cast<std::chrono::microseconds>(returned - t0).count()));
  }
}

}  // namespace

TEST_CASE("curl: a transfer nothing cancels returns CURLE_OK and keeps its connection alive") {
  curl_test::server ok(behaviour::answer);
  easy_handle easy;
  easy.url(ok.url());
  ctoken::CancellationTokenSource source;
  for (int i = 0; i < 3; ++i) {
    easy.body.clear();
    std::error_code why;
    REQUIRE(ctoken::curl::Perform(easy.h, source.Token(), why) == CURLE_OK);
    CHECK(easy.body == "ok");
    CHECK(!why);
  }
  CHECK(ok.requests() == 3);
  CHECK(ok.accepted() == 1);  // the thread's multi handle kept the connection for reuse
}

TEST_CASE("curl: errors come back exactly as curl_easy_perform reports them") {
  // A port nobody listens on: bind one, note it, close it.
  int port = 0;
  {
    curl_test::server gone(behaviour::answer);
    port = gone.port();
  }
  easy_handle easy;
  easy.url("http://127.0.0.1:" + std::to_string(port) + "/");
  const CURLcode bare = curl_easy_perform(easy.h);
  std::error_code why;
  const CURLcode ours = ctoken::curl::Perform(easy.h, ctoken::CancellationTokenSource().Token(), why);
  CHECK(bare == CURLE_COULDNT_CONNECT);
  CHECK(ours == bare);
  CHECK(!why);

  easy.url("notaprotocol://127.0.0.1/");
  CHECK(ctoken::curl::Perform(easy.h, ctoken::CancellationToken::None()) == curl_easy_perform(easy.h));
  CHECK(ctoken::curl::Perform(nullptr, ctoken::CancellationToken::None()) == CURLE_BAD_FUNCTION_ARGUMENT);
}

TEST_CASE("curl: a handle already in a multi handle of the caller is refused as curl_easy_perform refuses it") {
  easy_handle easy;
  easy.url("http://127.0.0.1:1/");
  CURLM* theirs = curl_multi_init();
  REQUIRE(curl_multi_add_handle(theirs, easy.h) == CURLM_OK);
  const CURLcode bare = curl_easy_perform(easy.h);
  CHECK(bare == CURLE_FAILED_INIT);
  CHECK(ctoken::curl::Perform(easy.h, ctoken::CancellationToken::None()) == bare);
  curl_multi_remove_handle(theirs, easy.h);
  curl_multi_cleanup(theirs);
}

TEST_CASE("curl: an already-cancelled token returns at once and the server sees nothing") {
  curl_test::server ok(behaviour::answer);
  easy_handle easy;
  easy.url(ok.url());
  ctoken::CancellationTokenSource source;
  source.Cancel(ctoken::errc::shutdown);
  std::error_code why;
  const auto t0 = steady::now();
  CHECK(ctoken::curl::Perform(easy.h, source.Token(), why) == CURLE_ABORTED_BY_CALLBACK);
  CHECK(steady::now() - t0 < kPrompt);
  CHECK(why == ctoken::errc::shutdown);
  std::this_thread::sleep_for(milliseconds(100));
  CHECK(ok.accepted() == 0);
  CHECK(ok.requests() == 0);
  check_reusable(easy);
}

TEST_CASE("curl: cancelled while connecting (a listener whose backlog is full)") {
  curl_test::server full(behaviour::never_accept);
  easy_handle easy;
  easy.url(full.url());
  const auto started = steady::now();
  cancel_when(
      easy, [&] { return steady::now() - started > milliseconds(200); }, milliseconds(0));
  curl_off_t connect_us = -1;
  curl_easy_getinfo(easy.h, CURLINFO_CONNECT_TIME_T, &connect_us);
  CHECK(connect_us == 0);  // it never connected: the cancellation came during connect()
  check_reusable(easy);
}

TEST_CASE("curl: cancelled during the TLS handshake (a server that never answers the ClientHello)") {
  curl_test::server silent(behaviour::silent);
  easy_handle easy;
  easy.url(silent.url("https"));
  // Debian's libcurl 7.88 reads its whole CA bundle in one step right after sending the
  // ClientHello (tens of ms, hundreds under TSan), and a cancellation waits for that step: a
  // hashed CA directory is looked up lazily instead (the limit is documented in curl.hpp).
  curl_easy_setopt(easy.h, CURLOPT_CAINFO, nullptr);
  if (::access("/etc/ssl/certs", F_OK) == 0) curl_easy_setopt(easy.h, CURLOPT_CAPATH, "/etc/ssl/certs");
  cancel_when(
      easy, [&] { return silent.requests() >= 1; }, milliseconds(20));
  CHECK(ctoken_test::eventually([&] { return silent.client_closed() == 1; }));
  check_reusable(easy);
}

TEST_CASE("curl: cancelled while sending a request body the server does not read") {
  curl_test::server deaf(behaviour::never_read);
  easy_handle easy;
  easy.url(deaf.url());
  struct upload {
    std::atomic<curl_off_t> sent{0};  // relaxed: a progress figure, read after the call returns
    static size_t read(char* buffer, size_t size, size_t count, void* self) {
      std::memset(buffer, 'x', size * count);
      static_cast<upload*>(self)->sent.fetch_add(static_cast<curl_off_t>(size * count), std::memory_order_relaxed);
      return size * count;
    }
  } body;
  const curl_off_t total = curl_off_t{1} << 30;                 // 1 GiB: far more than the socket buffers hold
  curl_slist* headers = curl_slist_append(nullptr, "Expect:");  // no 100-continue wait
  curl_easy_setopt(easy.h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(easy.h, CURLOPT_POST, 1L);
  curl_easy_setopt(easy.h, CURLOPT_POSTFIELDSIZE_LARGE, total);
  curl_easy_setopt(easy.h, CURLOPT_READFUNCTION, &upload::read);
  curl_easy_setopt(easy.h, CURLOPT_READDATA, &body);
  cancel_when(
      easy, [&] { return deaf.accepted() >= 1 && body.sent.load(std::memory_order_relaxed) > 0; }, milliseconds(100));
  const curl_off_t sent = body.sent.load(std::memory_order_relaxed);
  CHECK(sent > 0);
  CHECK(sent < total);
  deaf.drain();
  CHECK(ctoken_test::eventually([&] { return deaf.client_closed() == 1; }));
  curl_easy_setopt(easy.h, CURLOPT_HTTPHEADER, nullptr);
  curl_slist_free_all(headers);
  check_reusable(easy);
}

TEST_CASE("curl: cancelled while waiting for the response head") {
  curl_test::server silent(behaviour::silent);
  easy_handle easy;
  easy.url(silent.url());
  cancel_when(
      easy, [&] { return silent.requests() >= 1; }, milliseconds(20));
  CHECK(ctoken_test::eventually([&] { return silent.client_closed() == 1; }));
  long status = -1;
  curl_easy_getinfo(easy.h, CURLINFO_RESPONSE_CODE, &status);
  CHECK(status == 0);  // no head arrived
  check_reusable(easy);
}

TEST_CASE("curl: cancelled while reading a body that stalls") {
  curl_test::server stall(behaviour::stall_body);
  easy_handle easy;
  easy.url(stall.url());
  cancel_when(
      easy, [&] { return stall.requests() >= 1; }, milliseconds(50));
  CHECK(easy.body == "hello");  // the first bytes of the body were delivered, then it stalled
  CHECK(ctoken_test::eventually([&] { return stall.client_closed() == 1; }));
  check_reusable(easy);
}

TEST_CASE("curl: a CancelAfter deadline stops the transfer with the reason timed_out") {
  curl_test::server silent(behaviour::silent);
  easy_handle easy;
  easy.url(silent.url());
  ctoken::CancellationTokenSource source;
  const auto t0 = steady::now();
  source.CancelAfter(milliseconds(100));
  std::error_code why;
  CHECK(ctoken::curl::Perform(easy.h, source.Token(), why) == CURLE_ABORTED_BY_CALLBACK);
  CHECK(steady::now() - t0 >= milliseconds(100));
  CHECK(steady::now() - t0 < milliseconds(100) + kPrompt);
  CHECK(why == ctoken::errc::timed_out);
  CHECK(why == std::errc::timed_out);
}

TEST_CASE("curl: one Cancel stops transfers on several threads at once") {
  curl_test::server silent(behaviour::silent);
  constexpr int kThreads = 4;
  ctoken::CancellationTokenSource source;
  std::atomic<int> aborted{0};  // acq_rel/acquire: counts results, read after the joins
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      CURL* h = curl_easy_init();
      const std::string u = silent.url();
      curl_easy_setopt(h, CURLOPT_URL, u.c_str());
      curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
      curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
      if (ctoken::curl::Perform(h, source.Token()) == CURLE_ABORTED_BY_CALLBACK) {
        aborted.fetch_add(1, std::memory_order_acq_rel);
      }
      curl_easy_cleanup(h);
      ctoken::curl::ReleaseThreadResources();
    });
  }
  REQUIRE(ctoken_test::eventually([&] { return silent.requests() >= 1; }));
  std::this_thread::sleep_for(milliseconds(50));  // the others are connected and waiting
  const auto t0 = steady::now();
  source.Cancel();
  for (auto& t : threads) t.join();
  CHECK(steady::now() - t0 < kPrompt);
  CHECK(aborted.load(std::memory_order_acquire) == kThreads);
}

TEST_CASE("curl: a Perform started from inside another transfer's callback works") {
  curl_test::server outer_server(behaviour::answer);
  curl_test::server inner_server(behaviour::silent);
  easy_handle outer;
  outer.url(outer_server.url());
  struct inner_call {
    std::string url;
    CURLcode rc = CURLE_OK;
    bool ran = false;
    ctoken::CancellationTokenSource source;
    static size_t on_write(char*, size_t size, size_t count, void* self) {
      auto* me = static_cast<inner_call*>(self);
      if (!me->ran) {
        me->ran = true;
        CURL* h = curl_easy_init();
        curl_easy_setopt(h, CURLOPT_URL, me->url.c_str());
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
        me->source.CancelAfter(milliseconds(50));
        me->rc = ctoken::curl::Perform(h, me->source.Token());
        curl_easy_cleanup(h);
      }
      return size * count;
    }
  } inner;
  inner.url = inner_server.url();
  curl_easy_setopt(outer.h, CURLOPT_WRITEFUNCTION, &inner_call::on_write);
  curl_easy_setopt(outer.h, CURLOPT_WRITEDATA, &inner);
  CHECK(ctoken::curl::Perform(outer.h, ctoken::CancellationToken::None()) == CURLE_OK);
  CHECK(inner.ran);
  CHECK(inner.rc == CURLE_ABORTED_BY_CALLBACK);
}

// Resolving: the name goes to a DNS server that never answers. That needs this process's view
// of /etc/resolv.conf changed, which only a process of its own can do: the test below runs the
// hidden case after it in a child (this same binary) that enters new mount and network
// namespaces, where 127.0.0.1:53 is a UDP socket that reads nothing and /etc/resolv.conf points
// to it. Nothing leaves the namespace. Needs CAP_SYS_ADMIN (root); reported skipped otherwise.
TEST_CASE("curl: cancelled while resolving a name (a DNS server that never answers)") {
  std::error_code ec;
  ctoken::process::Options options;
  ::setenv("CTOKEN_CURL_RESOLVE_CHILD", "1", 1);
  ctoken::process::Child child = ctoken::process::Child::Start(
      {"/proc/self/exe", "curl: resolving in namespaces of its own (run by the resolving test)"}, ec, options);
  ::unsetenv("CTOKEN_CURL_RESOLVE_CHILD");
  REQUIRE(!ec);
  ctoken::CancellationTokenSource limit(std::chrono::seconds(60));
  ctoken::process::Exit exit;
  REQUIRE(!child.Wait(limit.Token(), milliseconds(100), exit));
  REQUIRE(!exit.Canceled);
  REQUIRE(exit.Exited);
  if (exit.Code == 77) return;  // the child printed "SKIPPED: why" on our standard output
  CHECK(exit.Code == 0);        // otherwise Catch2's count of failed assertions in the child
}

TEST_CASE("curl: resolving in namespaces of its own (run by the resolving test)", "[.]") {
  if (std::getenv("CTOKEN_CURL_RESOLVE_CHILD") == nullptr) return;
  const auto skip = [](const char* what) {
    std::printf("SKIPPED: %s: %s (needs root for mount and network namespaces)\n", what, std::strerror(errno));
    std::fflush(stdout);
    std::_Exit(77);
  };
  if (::unshare(CLONE_NEWNS | CLONE_NEWNET) != 0) skip("unshare");
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) skip("mount --make-rprivate /");
  {  // the new namespace's loopback starts down
    const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq ifr{};
    std::strcpy(ifr.ifr_name, "lo");
    if (s < 0 || ::ioctl(s, SIOCGIFFLAGS, &ifr) != 0) skip("SIOCGIFFLAGS lo");
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    if (::ioctl(s, SIOCSIFFLAGS, &ifr) != 0) skip("SIOCSIFFLAGS lo");
    ::close(s);
  }
  const int dns = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(53);
  REQUIRE(::bind(dns, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
  char dir[] = "/tmp/ctoken-resolv-XXXXXX";
  REQUIRE(::mkdtemp(dir) != nullptr);
  const std::string conf = std::string(dir) + "/resolv.conf";
  {
    const int fd = ::open(conf.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    const char text[] = "nameserver 127.0.0.1\noptions timeout:3 attempts:1\n";
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, text, sizeof text - 1) == static_cast<ssize_t>(sizeof text - 1));
    ::close(fd);
  }
  if (::mount(conf.c_str(), "/etc/resolv.conf", nullptr, MS_BIND, nullptr) != 0) skip("bind-mount resolv.conf");
  ::unlink(conf.c_str());  // the mount keeps the file
  ::rmdir(dir);

  const curl_version_info_data* info = curl_version_info(CURLVERSION_NOW);
  INFO("libcurl without AsynchDNS cannot be interrupted while it resolves");
  REQUIRE((info->features & CURL_VERSION_ASYNCHDNS) != 0);
  easy_handle easy;
  easy.url("http://upstream.ctoken.test/");
  curl_easy_setopt(easy.h, CURLOPT_QUICK_EXIT, 1L);  // do not wait for the resolver thread
  cancel_when(
      easy, [] { return true; }, milliseconds(100));
  check_reusable(easy);
  ::close(dns);
}

TEST_CASE("curl: cancellations racing transfers that complete leave every result and the handle sound") {
  curl_test::server ok(behaviour::answer);
  easy_handle easy;
  easy.url(ok.url());
  int completed = 0;
  int aborted = 0;
  const auto until = steady::now() + ctoken_test::stress_duration();
  for (unsigned i = 0; steady::now() < until || i < 50; ++i) {
    ctoken::CancellationTokenSource source;
    const auto delay = std::chrono::microseconds((i * 37u) % 300u);  // around one request's time
    std::thread canceller([&source, delay] {
      std::this_thread::sleep_for(delay);
      source.Cancel();
    });
    easy.body.clear();
    std::error_code why;
    const CURLcode rc = ctoken::curl::Perform(easy.h, source.Token(), why);
    canceller.join();
    if (rc == CURLE_OK) {
      ++completed;
      CHECK(easy.body == "ok");
      CHECK(!why);
    } else {
      ++aborted;
      INFO("curl said: " << curl_easy_strerror(rc));
      REQUIRE(rc == CURLE_ABORTED_BY_CALLBACK);
      CHECK(why == ctoken::errc::canceled);
    }
  }
  INFO("completed " << completed << ", aborted " << aborted);
  CHECK(aborted > 0);
  check_reusable(easy);
}
