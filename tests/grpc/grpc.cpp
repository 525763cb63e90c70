// <ctoken/grpc.hpp> against real gRPC servers on 127.0.0.1: client -> A -> B, where A forwards
// each call under its own call's token and B waits on its token (examples/grpc/hop_service).
#include <dirent.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <ctoken/ctoken.hpp>
#include <ctoken/grpc.hpp>

#include "ctoken_test.hpp"
#include "hop_service.hpp"

extern char** environ;

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// B and A on ephemeral loopback ports, and a stub for A.
struct Chain {
  ctoken::CancellationTokenSource stopping_a, stopping_b;
  hops::RecordingObserver events;
  std::unique_ptr<hops::HopService> service_a, service_b;
  std::unique_ptr<grpc::Server> server_a, server_b;
  std::unique_ptr<ctoken_hops::Hop::Stub> stub;
  std::string target_a;

  Chain() {
    std::string error;
    int port_b = 0, port_a = 0;
    service_b = std::make_unique<hops::HopService>("B", nullptr, stopping_b.Token(), 30s, &events);
    server_b = hops::StartServer(*service_b, 0, port_b, error);
    REQUIRE(server_b);
    auto to_b = grpc::CreateChannel("127.0.0.1:" + std::to_string(port_b), grpc::InsecureChannelCredentials());
    service_a = std::make_unique<hops::HopService>("A", to_b, stopping_a.Token(), 30s, &events);
    server_a = hops::StartServer(*service_a, 0, port_a, error);
    REQUIRE(server_a);
    target_a = "127.0.0.1:" + std::to_string(port_a);
    stub = ctoken_hops::Hop::NewStub(grpc::CreateChannel(target_a, grpc::InsecureChannelCredentials()));
  }
  ~Chain() {
    stopping_a.Cancel(ctoken::errc::shutdown);
    stopping_b.Cancel(ctoken::errc::shutdown);
    server_a->Shutdown(std::chrono::system_clock::now() + 5s);
    server_b->Shutdown(std::chrono::system_clock::now() + 5s);
  }

  grpc::Status Call(const std::string& id, std::int64_t work_ms, const ctoken::CancellationToken& token) {
    ctoken_hops::WorkRequest request;
    request.set_id(id);
    request.set_work_ms(work_ms);
    ctoken_hops::WorkReply reply;
    ctoken::GrpcClientContext call(token);
    return stub->Work(&call.Context(), request, &reply);
  }

  bool Settled() { return service_a->LiveCalls() == 0 && service_b->LiveCalls() == 0; }
};

const auto started = [](const hops::HopEvents& e) { return e.started; };
const auto done = [](const hops::HopEvents& e) { return e.done; };

int count_threads() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
  }
  return -1;
}

int count_fds() {
  int n = 0;
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (readdir(dir) != nullptr) ++n;
    closedir(dir);
  }
  return n - 3;  // ".", ".." and the directory's own descriptor
}

}  // namespace

TEST_CASE("three hops: a call that completes leaves every token uncancelled") {
  Chain chain;
  ctoken::CancellationTokenSource source;
  const grpc::Status status = chain.Call("ok", 50, source.Token());
  CHECK(status.ok());
  const hops::HopEvents b = chain.events.WaitFor("B", "ok", done, 10s);
  const hops::HopEvents a = chain.events.WaitFor("A", "ok", done, 10s);
  CHECK(a.done);
  CHECK(b.done);
  CHECK(!a.reason);
  CHECK(!b.reason);
  CHECK(!a.deadline);  // no deadline anywhere: none is invented
  CHECK(!b.deadline);
}

TEST_CASE("three hops: the client cancels and every hop's token fires, B's work stops") {
  Chain chain;
  ctoken::CancellationTokenSource source;
  Clock::time_point cancelled_at{};
  std::thread canceller([&] {
    REQUIRE(chain.events.WaitFor("B", "cancel", started, 10s).started);
    cancelled_at = Clock::now();
    source.Cancel();
  });
  const auto begin = Clock::now();
  const grpc::Status status = chain.Call("cancel", 20000, source.Token());
  canceller.join();
  CHECK(status.error_code() == grpc::StatusCode::CANCELLED);
  CHECK(Clock::now() - begin < 10s);  // B's 20 s of work did not run
  const hops::HopEvents a = chain.events.WaitFor("A", "cancel", done, 10s);
  const hops::HopEvents b = chain.events.WaitFor("B", "cancel", done, 10s);
  CHECK(a.reason == ctoken::errc::canceled);
  CHECK(b.reason == ctoken::errc::canceled);
  CHECK(a.cancelled_at >= cancelled_at);
  CHECK(b.cancelled_at >= a.cancelled_at);  // the order of the hops
  CHECK(b.status == grpc::StatusCode::CANCELLED);
  CHECK(ctoken_test::eventually([&] { return chain.Settled(); }));
}

TEST_CASE("three hops: the client's 300 ms deadline is B's Deadline(), and B times out") {
  Chain chain;
  // Connections up and gRPC's threads started, as in a service that has been running.
  ctoken::CancellationTokenSource warm;
  REQUIRE(chain.Call("warm-up", 0, warm.Token()).ok());
  // Each hop's deadline is later than the client's by the time the request took to arrive:
  // about a millisecond per hop on loopback. A machine that stalls the process for longer than
  // a hop's deadline window (50 ms) makes a deadline look like a cancel at the server (the
  // client's reset arrives well before the server's own deadline): such an attempt says nothing
  // about the code and is repeated, up to three times.
  for (int attempt = 1;; ++attempt) {
    const std::string id = "deadline" + std::to_string(attempt);
    ctoken::CancellationTokenSource source(300ms);
    const auto client_deadline = source.Token().Deadline();
    REQUIRE(client_deadline);
    const grpc::Status status = chain.Call(id, 20000, source.Token());
    const hops::HopEvents a = chain.events.WaitFor("A", id, done, 10s);
    const hops::HopEvents b = chain.events.WaitFor("B", id, done, 10s);
    REQUIRE(a.deadline);
    REQUIRE(b.deadline);
    const auto gap_a = std::chrono::duration<double, std::milli>(*a.deadline - *client_deadline).count();
    const auto gap_b = std::chrono::duration<double, std::milli>(*b.deadline - *client_deadline).count();
    std::printf("attempt %d: A's deadline - client's: %+.2f ms, B's: %+.2f ms\n", attempt, gap_a, gap_b);
    if (gap_b >= 50.0 && attempt < 3) continue;
    INFO("A's deadline - client's: " << gap_a << " ms; B's: " << gap_b << " ms");
    CHECK(status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED);
    CHECK(gap_a > -2.0);  // gRPC rounds the time left up, never down
    CHECK(gap_a < 50.0);
    CHECK(gap_b >= gap_a - 2.0);
    CHECK(gap_b < 50.0);
    CHECK(a.reason == ctoken::errc::timed_out);
    CHECK(b.reason == ctoken::errc::timed_out);
    CHECK(b.cancelled_at >= *client_deadline - 5ms);
    break;
  }
  CHECK(ctoken_test::eventually([&] { return chain.Settled(); }));
}

TEST_CASE("client: a token cancelled before the call starts ends it with CANCELLED") {
  Chain chain;
  ctoken::CancellationTokenSource source;
  source.Cancel();
  const grpc::Status status = chain.Call("early", 20000, source.Token());
  CHECK(status.error_code() == grpc::StatusCode::CANCELLED);
  std::this_thread::sleep_for(100ms);
  CHECK(!chain.events.Get("B", "early").started);
}

TEST_CASE("client: the token's deadline applies only when it is earlier than the context's") {
  ctoken::CancellationTokenSource source(10s);
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + 1s);
    ctoken::GrpcClientCancellation bind(context, source.Token());
    CHECK(!bind.AppliedDeadline());
    CHECK(context.deadline() < std::chrono::system_clock::now() + 2s);
  }
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + 60s);
    ctoken::GrpcClientCancellation bind(context, source.Token());
    REQUIRE(bind.AppliedDeadline());
    CHECK(context.deadline() == *bind.AppliedDeadline());
    CHECK(context.deadline() < std::chrono::system_clock::now() + 11s);
  }
  {
    ctoken::CancellationTokenSource no_deadline;
    ctoken::GrpcClientContext call(no_deadline.Token());
    CHECK(!call.AppliedDeadline());
    CHECK(call.Context().deadline() == std::chrono::system_clock::time_point::max());
  }
}

TEST_CASE("races: calls that finish while their token is being cancelled") {
  Chain chain;
  // Work of 0-3 ms against a cancel 0-3 ms after the start: the cancel lands before, during
  // and after the end of the call at every hop. Nothing may crash, hang or leak (ASan).
  for (int i = 0; i < 200; ++i) {
    ctoken::CancellationTokenSource source;
    std::thread canceller([&source, i] {
      std::this_thread::sleep_for(std::chrono::microseconds((i * 37) % 3000));
      source.Cancel();
    });
    const grpc::Status status = chain.Call("race" + std::to_string(i), i % 4, source.Token());
    canceller.join();
    CHECK((status.ok() || status.error_code() == grpc::StatusCode::CANCELLED));
  }
  CHECK(ctoken_test::eventually([&] { return chain.Settled(); }));
}

TEST_CASE("server: shutdown stops the calls in flight with reason shutdown (UNAVAILABLE)") {
  Chain chain;
  std::thread stopper([&] {
    REQUIRE(chain.events.WaitFor("B", "stop", started, 10s).started);
    chain.stopping_b.Cancel(ctoken::errc::shutdown);
    chain.server_b->Shutdown(std::chrono::system_clock::now() + 10s);
  });
  const auto begin = Clock::now();
  ctoken::CancellationTokenSource source;
  const grpc::Status status = chain.Call("stop", 20000, source.Token());
  stopper.join();
  CHECK(Clock::now() - begin < 5s);  // neither the 20 s of work nor Shutdown's 10 s
  CHECK(status.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(chain.events.WaitFor("B", "stop", done, 10s).reason == ctoken::errc::shutdown);
  // A's own call was never cancelled: it passed B's answer on.
  CHECK(!chain.events.WaitFor("A", "stop", done, 10s).reason);
}

TEST_CASE("server: a call that arrives after the stopping token fired is answered UNAVAILABLE at once") {
  Chain chain;
  chain.stopping_b.Cancel(ctoken::errc::shutdown);  // B still listens: Shutdown() comes later
  ctoken::CancellationTokenSource source;
  const auto begin = Clock::now();
  const grpc::Status status = chain.Call("late", 20000, source.Token());
  CHECK(Clock::now() - begin < 5s);
  // B's reactor finished the call from its constructor (the token was cancelled from the start),
  // before gRPC had bound it: gRPC keeps such a Finish until it binds the reactor.
  CHECK(status.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(chain.events.WaitFor("B", "late", done, 10s).reason == ctoken::errc::shutdown);
  CHECK(ctoken_test::eventually([&] { return chain.Settled(); }));
}

TEST_CASE("connection drop: killing the client's process stops A and B") {
  Chain chain;
  const std::string program = CTOKEN_GRPC_TEST_CLIENT;
  std::vector<std::string> args{program, chain.target_a, "killed", "20000"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  REQUIRE(posix_spawn(&pid, program.c_str(), nullptr, nullptr, argv.data(), environ) == 0);
  const bool in_flight = chain.events.WaitFor("B", "killed", started, 20s).started;
  REQUIRE(kill(pid, SIGKILL) == 0);
  const auto killed_at = Clock::now();
  int wstatus = 0;
  REQUIRE(waitpid(pid, &wstatus, 0) == pid);
  REQUIRE(in_flight);
  const hops::HopEvents a = chain.events.WaitFor("A", "killed", done, 10s);
  const hops::HopEvents b = chain.events.WaitFor("B", "killed", done, 10s);
  // gRPC tells a server only "cancelled", not why: a dropped connection reads as errc::canceled.
  CHECK(a.reason == ctoken::errc::canceled);
  CHECK(b.reason == ctoken::errc::canceled);
  CHECK(a.cancelled_at - killed_at < 5s);
  CHECK(b.done);
  CHECK(ctoken_test::eventually([&] { return chain.Settled(); }));
}

namespace {

// One round of `n` concurrent calls under one token, cancelled at once when B has them all.
// Returns how many ended with CANCELLED.
int cancel_concurrent(Chain& chain, int n, int round) {
  struct Call {
    explicit Call(const ctoken::CancellationToken& token) : call(token) {}
    ctoken::GrpcClientContext call;
    ctoken_hops::WorkRequest request;
    ctoken_hops::WorkReply reply;
    grpc::Status status;
  };
  ctoken::CancellationTokenSource source;
  std::vector<std::unique_ptr<Call>> calls;
  std::atomic<int> finished{0};
  for (int i = 0; i < n; ++i) {
    calls.push_back(std::make_unique<Call>(source.Token()));
    Call& c = *calls.back();
    c.request.set_id("r" + std::to_string(round) + "-" + std::to_string(i));
    c.request.set_work_ms(30000);
    chain.stub->async()->Work(&c.call.Context(), &c.request, &c.reply, [&c, &finished](grpc::Status s) {
      c.status = std::move(s);
      finished.fetch_add(1, std::memory_order_release);  // pairs with the acquire loads below
    });
  }
  INFO("round " << round);
  REQUIRE(ctoken_test::eventually([&] { return chain.service_b->LiveCalls() == n; }, 60s));
  const auto begin = Clock::now();
  source.Cancel();
  REQUIRE(ctoken_test::eventually([&] { return finished.load(std::memory_order_acquire) == n; }, 60s));
  const auto client_done = Clock::now();
  REQUIRE(ctoken_test::eventually([&] { return chain.Settled(); }, 60s));
  std::printf("round %d: %d calls cancelled at once; all ended at the client after %.1f ms, at A and B after %.1f ms\n",
              round, n, std::chrono::duration<double, std::milli>(client_done - begin).count(),
              std::chrono::duration<double, std::milli>(Clock::now() - begin).count());
  int cancelled_calls = 0;
  for (const auto& c : calls) cancelled_calls += c->status.error_code() == grpc::StatusCode::CANCELLED;
  return cancelled_calls;
}

}  // namespace

TEST_CASE("1000 concurrent calls cancelled at once all stop, and nothing leaks") {
  Chain chain;
  constexpr int kCalls = 1000;
  CHECK(cancel_concurrent(chain, kCalls, 1) == kCalls);
  // gRPC's pools grow on first use: the baseline is taken after one round.
  const int threads = count_threads();
  const int fds = count_fds();
  for (int round = 2; round <= 3; ++round) CHECK(cancel_concurrent(chain, kCalls, round) == kCalls);
  const int threads_after = count_threads();
  const int fds_after = count_fds();
  std::printf("threads %d -> %d, descriptors %d -> %d over rounds 2 and 3\n", threads, threads_after, fds, fds_after);
  // A leak per call would show as a thousand more per round. gRPC's thread pool may still grow
  // a little under load (it adds threads while its own are busy): a small margin, no more.
  CHECK(threads_after <= threads + 8);
  CHECK(fds_after <= fds + 8);
  CHECK(chain.service_a->LiveCalls() == 0);
  CHECK(chain.service_b->LiveCalls() == 0);
}

namespace {

// The synchronous API: a handler that polls (gRPC offers no callback there).
class PollingHop final : public ctoken_hops::Hop::Service {
 public:
  grpc::Status Work(grpc::ServerContext* context, const ctoken_hops::WorkRequest* request,
                    ctoken_hops::WorkReply* reply) override {
    ctoken::GrpcServerCallCancellation call(*context);
    const auto until = Clock::now() + std::chrono::milliseconds(request->work_ms());
    entered.store(true, std::memory_order_release);  // pairs with the test's acquire load
    while (Clock::now() < until) {
      if (call.Poll()) {
        reason = call.Token().Reason();
        return ctoken::GrpcStatusFor(reason);
      }
      (void)ctoken::SleepFor(10ms, call.Token());  // wakes early on deadline or shutdown
    }
    reply->set_trace("sync");
    return grpc::Status::OK;
  }
  std::atomic<bool> entered{false};
  std::error_code reason;  // written by the handler, read after the call ended
};

}  // namespace

TEST_CASE("synchronous API: Poll() turns the client's cancel into the token") {
  PollingHop service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  REQUIRE(server);
  auto stub = ctoken_hops::Hop::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  ctoken::CancellationTokenSource source;
  std::thread canceller([&] {
    REQUIRE(ctoken_test::eventually([&] { return service.entered.load(std::memory_order_acquire); }));
    source.Cancel();
  });
  ctoken_hops::WorkRequest request;
  request.set_work_ms(20000);
  ctoken_hops::WorkReply reply;
  ctoken::GrpcClientContext call(source.Token());
  const grpc::Status status = stub->Work(&call.Context(), request, &reply);
  canceller.join();
  CHECK(status.error_code() == grpc::StatusCode::CANCELLED);
  server->Shutdown(std::chrono::system_clock::now() + 10s);  // waits for the handler to return
  CHECK(service.reason == ctoken::errc::canceled);
}

namespace {

// Server streaming with the callback API: one write always outstanding, so a client that stops
// reading and cancels leaves a write that only the cancellation ends.
class StreamingHop final : public ctoken_hops::Hop::CallbackService {
 public:
  grpc::ServerWriteReactor<ctoken_hops::WorkReply>* Watch(grpc::CallbackServerContext* context,
                                                          const ctoken_hops::WorkRequest*) override {
    return new Ticker(context, *this);
  }

  std::mutex mutex;
  std::condition_variable changed;
  std::error_code reason;  // the call token's reason, once it fired
  bool done = false;       // OnDone ran

 private:
  class Ticker final : public ctoken::GrpcCancellableReactor<grpc::ServerWriteReactor<ctoken_hops::WorkReply>> {
   public:
    Ticker(grpc::CallbackServerContext* context, StreamingHop& service)
        : GrpcCancellableReactor(context), service_(service) {
      observed_ = Token().Register([this](std::error_code why) {
        {
          std::lock_guard<std::mutex> lock(service_.mutex);
          service_.reason = why;
        }
        service_.changed.notify_all();
      });
      Next();
    }
    void OnWriteDone(bool ok) override {
      const ctoken::CancellationToken token = Token();
      if (!ok || token.IsCancellationRequested()) {
        Finish(token.IsCancellationRequested() ? ctoken::GrpcStatusFor(token.Reason()) : grpc::Status::CANCELLED);
        return;
      }
      Next();
    }
    void OnDone() override {
      observed_.Dispose();
      StreamingHop& service = service_;
      delete this;
      {
        std::lock_guard<std::mutex> lock(service.mutex);
        service.done = true;
      }
      service.changed.notify_all();
    }

   private:
    void Next() {
      reply_.set_trace("tick " + std::to_string(++ticks_));
      StartWrite(&reply_);
    }
    StreamingHop& service_;
    ctoken_hops::WorkReply reply_;
    int ticks_ = 0;
    ctoken::CancellationTokenRegistration observed_;
  };
};

}  // namespace

TEST_CASE("streaming: cancelling the client's token ends a server stream and fires its token") {
  StreamingHop service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  REQUIRE(server);
  auto stub = ctoken_hops::Hop::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  ctoken::CancellationTokenSource source;
  ctoken::GrpcClientContext call(source.Token());
  ctoken_hops::WorkRequest request;
  auto reader = stub->Watch(&call.Context(), request);
  ctoken_hops::WorkReply reply;
  int read = 0;
  while (read < 5 && reader->Read(&reply)) ++read;
  CHECK(read == 5);
  source.Cancel();
  while (reader->Read(&reply)) {
  }
  CHECK(reader->Finish().error_code() == grpc::StatusCode::CANCELLED);
  std::unique_lock<std::mutex> lock(service.mutex);
  CHECK(service.changed.wait_for(lock, 10s, [&] { return service.done; }));
  CHECK(service.reason == ctoken::errc::canceled);
  lock.unlock();
  server->Shutdown(std::chrono::system_clock::now() + 5s);
}
