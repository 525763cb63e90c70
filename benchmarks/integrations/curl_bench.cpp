// <ctoken/curl.hpp> against the bare libcurl call, in one binary (Google Benchmark).
//
//   ctoken_bench_curl [--samples=N] [benchmark flags]
//
// Rows:
//   keepalive/curl_easy_perform  GET of a 2-byte body from a loopback HTTP/1.1 server, one
//                                easy handle, the connection kept alive between iterations
//   keepalive/ctoken_Perform     the same through ctoken::curl::Perform with a live token
//   keepalive/interleaved        both in alternating rounds of 100 (rounds: samples / 10), as
//                                counters bare_us, ctoken_us and ratio (medians over rounds)
//   cancel_latency/<phase>       Cancel() to Perform returning, over N samples (--samples,
//                                default 200), as counters p50_us, p99_us, max_us, each sample
//                                against a fresh scripted server on 127.0.0.1:
//     connecting        a listener whose backlog is full (SYNs dropped), cancelled 2 ms in
//     tls               a peer that never answers the ClientHello (CA looked up lazily:
//                       CURLOPT_CAINFO NULL, CURLOPT_CAPATH /etc/ssl/certs)
//     tls_ca_bundle     the same with libcurl's default CA bundle: the cancellation waits for
//                       libcurl to finish reading the bundle (see curl.hpp's limits)
//     sending           a 1 GiB upload to a peer that never reads, cancelled 20 ms in
//     head              a peer that reads the request and never answers, cancelled 2 ms later
//     body              a head and 5 bytes of a 1 MB body, then nothing, cancelled 2 ms later
#include <ctoken/ctoken.hpp>
#include <ctoken/curl.hpp>

#include <benchmark/benchmark.h>
#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "curl_loopback.hpp"
#include "latency_support.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

using curl_test::behaviour;
using latency_support::fail;
using latency_support::percentile;
int g_samples = 200;

size_t discard(char*, size_t size, size_t count, void*) { return size * count; }
size_t zeros(char* buffer, size_t size, size_t count, void*) {
  std::memset(buffer, 0, size * count);
  return size * count;
}

CURL* new_handle(const std::string& url) {
  CURL* h = curl_easy_init();
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &discard);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
  return h;
}

void keepalive(benchmark::State& state, bool with_token) {
  curl_test::server ok(behaviour::answer);
  CURL* h = new_handle(ok.url());
  ctoken::CancellationTokenSource source;
  const ctoken::CancellationToken token = source.Token();
  for (auto _ : state) {
    const CURLcode rc = with_token ? ctoken::curl::Perform(h, token) : curl_easy_perform(h);
    if (rc != CURLE_OK) {
      fail(state, curl_easy_strerror(rc));
      break;
    }
  }
  if (ok.accepted() > 1) fail(state, "the connection was not kept alive");
  curl_easy_cleanup(h);
}

// Both calls in alternating rounds of 100 requests (two handles, so each keeps its own
// connection alive), so that load drifting on a shared machine hits both alike; the counters
// are the medians of the rounds and of the per-round ratio ctoken / bare.
void keepalive_interleaved(benchmark::State& state) {
  curl_test::server ok(behaviour::answer);
  CURL* bare = new_handle(ok.url());
  CURL* ours = new_handle(ok.url());
  ctoken::CancellationTokenSource source;
  const ctoken::CancellationToken token = source.Token();
  const int rounds = std::max(2, g_samples / 10);
  constexpr int kPerRound = 100;
  std::vector<double> bare_us, ours_us, ratio;
  for (auto _ : state) {
    if (curl_easy_perform(bare) != CURLE_OK || ctoken::curl::Perform(ours, token) != CURLE_OK) {
      fail(state, "warm-up request failed");
      break;
    }
    for (int r = 0; r < rounds; ++r) {
      const auto t0 = clock_type::now();
      for (int i = 0; i < kPerRound; ++i) benchmark::DoNotOptimize(curl_easy_perform(bare));
      const auto t1 = clock_type::now();
      for (int i = 0; i < kPerRound; ++i) benchmark::DoNotOptimize(ctoken::curl::Perform(ours, token));
      const auto t2 = clock_type::now();
      bare_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count() / kPerRound);
      ours_us.push_back(std::chrono::duration<double, std::micro>(t2 - t1).count() / kPerRound);
      ratio.push_back(ours_us.back() / bare_us.back());
    }
  }
  if (ok.accepted() != 2) fail(state, "the connections were not kept alive");
  if (!ratio.empty()) {
    state.counters["bare_us"] = percentile(bare_us, 0.5);
    state.counters["ctoken_us"] = percentile(ours_us, 0.5);
    state.counters["ratio"] = percentile(ratio, 0.5);
  }
  curl_easy_cleanup(bare);
  curl_easy_cleanup(ours);
}

enum class phase { connecting, tls, tls_ca_bundle, sending, head, body };

void cancel_latency(benchmark::State& state, phase which) {
  std::vector<double> samples_us;
  for (auto _ : state) {
    samples_us.clear();
    for (int i = 0; i < g_samples; ++i) {
      behaviour b = behaviour::silent;
      if (which == phase::connecting) b = behaviour::never_accept;
      if (which == phase::sending) b = behaviour::never_read;
      if (which == phase::body) b = behaviour::stall_body;
      curl_test::server peer(b);
      const bool tls = which == phase::tls || which == phase::tls_ca_bundle;
      CURL* h = new_handle(peer.url(tls ? "https" : "http"));
      curl_slist* headers = nullptr;
      if (which == phase::tls) {
        curl_easy_setopt(h, CURLOPT_CAINFO, nullptr);
        if (::access("/etc/ssl/certs", F_OK) == 0) curl_easy_setopt(h, CURLOPT_CAPATH, "/etc/ssl/certs");
      }
      if (which == phase::sending) {
        headers = curl_slist_append(nullptr, "Expect:");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(1) << 30);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, &zeros);
      }
      ctoken::CancellationTokenSource source;
      std::atomic<long long> cancelled_at{0};  // release/acquire: read after the join
      std::thread canceller([&] {
        const auto start = clock_type::now();
        auto settle = std::chrono::milliseconds(2);
        if (which == phase::connecting) {
          settle = std::chrono::milliseconds(5);
        } else if (which == phase::sending) {
          while (peer.accepted() < 1 && clock_type::now() - start < std::chrono::seconds(10)) std::this_thread::yield();
          settle = std::chrono::milliseconds(20);
        } else {
          while (peer.requests() < 1 && clock_type::now() - start < std::chrono::seconds(10)) std::this_thread::yield();
        }
        std::this_thread::sleep_for(settle);
        cancelled_at.store(clock_type::now().time_since_epoch().count(), std::memory_order_release);
        source.Cancel();
      });
      const CURLcode rc = ctoken::curl::Perform(h, source.Token());
      const auto returned = clock_type::now();
      canceller.join();
      curl_easy_cleanup(h);
      curl_slist_free_all(headers);
      if (which == phase::sending) peer.drain();
      if (rc != CURLE_ABORTED_BY_CALLBACK) {
        fail(state, curl_easy_strerror(rc));
        return;
      }
      const auto at = clock_type::time_point(clock_type::duration(cancelled_at.load(std::memory_order_acquire)));
      samples_us.push_back(std::chrono::duration<double, std::micro>(returned - at).count());
    }
  }
  latency_support::set_latency_counters(state, samples_us);
}

}  // namespace

int main(int argc, char** argv) {
  // Our own flag first (Google Benchmark rejects flags it does not know).
  latency_support::take_samples_flag(argc, argv, g_samples);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RegisterBenchmark("keepalive/curl_easy_perform", [](benchmark::State& st) {
    keepalive(st, false);
  })->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("keepalive/ctoken_Perform", [](benchmark::State& st) {
    keepalive(st, true);
  })->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("keepalive/interleaved", keepalive_interleaved)
      ->Iterations(1)
      ->Unit(benchmark::kMillisecond);
  const struct {
    const char* name;
    phase which;
  } phases[] = {{"connecting", phase::connecting}, {"tls", phase::tls},   {"tls_ca_bundle", phase::tls_ca_bundle},
                {"sending", phase::sending},       {"head", phase::head}, {"body", phase::body}};
  for (const auto& p : phases) {
    const phase which = p.which;
    benchmark::RegisterBenchmark((std::string("cancel_latency/") + p.name).c_str(),
                                 [which](benchmark::State& st) { cancel_latency(st, which); })
        ->Iterations(1)
        ->Unit(benchmark::kMillisecond);
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  ctoken::curl::ReleaseThreadResources();
  curl_global_cleanup();
  return latency_support::exit_code();
}
