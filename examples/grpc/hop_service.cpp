#include "hop_service.hpp"

#include <algorithm>
#include <utility>

#include <ctoken/grpc.hpp>

namespace hops {

namespace {

// Registers the observer's view of the call's token; the registration is a member of the
// reactor, so it is disposed (waiting for a running callback) before the reactor dies.
ctoken::CancellationTokenRegistration observe(const ctoken::CancellationToken& token, const std::string& hop,
                                              const std::string& id, HopObserver* observer) {
  if (observer == nullptr) return {};
  return token.Register([&hop, &id, observer](std::error_code reason) {
    observer->OnTokenCancelled(hop, id, reason, std::chrono::steady_clock::now());
  });
}

}  // namespace

// Hop A: forwards the request to the next hop under this call's token.
class HopService::ForwardCall final : public ctoken::GrpcCancellableReactor<grpc::ServerUnaryReactor> {
 public:
  ForwardCall(HopService& service, grpc::CallbackServerContext* context, const ctoken_hops::WorkRequest& request,
              ctoken_hops::WorkReply* reply)
      : GrpcCancellableReactor(context, service.stopping_),
        service_(service),
        id_(request.id()),
        request_(request),
        reply_(reply),
        next_call_(Token()) {  // cancellation and the remaining deadline, passed on
    service_.live_.fetch_add(1, std::memory_order_acq_rel);
    if (service_.observer_ != nullptr) service_.observer_->OnStart(service_.name_, id_, Token().Deadline());
    observed_ = observe(Token(), service_.name_, id_, service_.observer_);
    service_.next_->async()->Work(&next_call_.Context(), &request_, &next_reply_,
                                  [this](grpc::Status status) { OnNextDone(std::move(status)); });
  }

  void OnDone() override {
    observed_.Dispose();  // waits for an observer callback running on another thread
    HopService& service = service_;
    if (service.observer_ != nullptr) service.observer_->OnDone(service.name_, id_, status_);
    delete this;
    service.live_.fetch_sub(1, std::memory_order_acq_rel);
  }

 private:
  void OnNextDone(grpc::Status status) {
    // Our own token's reason says more than the next hop's CANCELLED (why we cancelled it).
    const ctoken::CancellationToken token = Token();
    if (!status.ok() && token.IsCancellationRequested()) status = ctoken::GrpcStatusFor(token.Reason());
    if (status.ok()) reply_->set_trace(next_reply_.trace() + "," + service_.name_);
    status_ = status;
    Finish(std::move(status));
  }

  HopService& service_;
  std::string id_;
  ctoken_hops::WorkRequest request_;
  ctoken_hops::WorkReply* reply_;
  ctoken_hops::WorkReply next_reply_;
  grpc::Status status_;
  ctoken::GrpcClientContext next_call_;
  ctoken::CancellationTokenRegistration observed_;
};

// Hop B: waits work_ms, or until the call's token is cancelled, whichever comes first, with no
// thread of its own: a linked source whose CancelAfter is the work, and one registration.
class HopService::WaitCall final : public ctoken::GrpcCancellableReactor<grpc::ServerUnaryReactor> {
 public:
  WaitCall(HopService& service, grpc::CallbackServerContext* context, const ctoken_hops::WorkRequest& request,
           ctoken_hops::WorkReply* reply)
      : GrpcCancellableReactor(context, service.stopping_),
        service_(service),
        id_(request.id()),
        reply_(reply),
        work_(ctoken::CancellationTokenSource::CreateLinkedTokenSource(Token())) {
    service_.live_.fetch_add(1, std::memory_order_acq_rel);
    if (service_.observer_ != nullptr) service_.observer_->OnStart(service_.name_, id_, Token().Deadline());
    observed_ = observe(Token(), service_.name_, id_, service_.observer_);
    const auto work =
        std::clamp(std::chrono::milliseconds(request.work_ms()), std::chrono::milliseconds(0), service_.max_work_);
    work_.CancelAfter(work);
    // Runs exactly once: when the work time is over or when the call's token is cancelled. It
    // may run right here (work 0, or the call already cancelled), on ctoken's timer thread or
    // on the thread that cancelled the call; Finish may be called from any of them.
    work_done_ = work_.Token().Register([this] { Complete(); });
  }

  void OnDone() override {
    // Disposed first: each waits for its callback if it is still running on another thread
    // (the timer thread may still be returning from Complete() while gRPC runs OnDone).
    work_done_.Dispose();
    observed_.Dispose();
    HopService& service = service_;
    if (service.observer_ != nullptr) service.observer_->OnDone(service.name_, id_, status_);
    delete this;
    service.live_.fetch_sub(1, std::memory_order_acq_rel);
  }

 private:
  void Complete() {
    const ctoken::CancellationToken token = Token();
    grpc::Status status;
    if (token.IsCancellationRequested()) {
      status = ctoken::GrpcStatusFor(token.Reason());
    } else {
      reply_->set_trace(service_.name_);
    }
    status_ = status;
    Finish(std::move(status));
  }

  HopService& service_;
  std::string id_;
  ctoken_hops::WorkReply* reply_;
  grpc::Status status_;
  ctoken::CancellationTokenSource work_;
  ctoken::CancellationTokenRegistration observed_;
  ctoken::CancellationTokenRegistration work_done_;
};

HopService::HopService(std::string name, std::shared_ptr<grpc::Channel> next, ctoken::CancellationToken stopping,
                       std::chrono::milliseconds max_work, HopObserver* observer)
    : name_(std::move(name)),
      next_(next ? ctoken_hops::Hop::NewStub(next) : nullptr),
      stopping_(std::move(stopping)),
      max_work_(max_work),
      observer_(observer) {}

grpc::ServerUnaryReactor* HopService::Work(grpc::CallbackServerContext* context,
                                           const ctoken_hops::WorkRequest* request, ctoken_hops::WorkReply* reply) {
  if (next_) return new ForwardCall(*this, context, *request, reply);
  return new WaitCall(*this, context, *request, reply);
}

std::unique_ptr<grpc::Server> StartServer(HopService& service, int port, int& bound_port, std::string& error) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::InsecureServerCredentials(), &bound_port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || bound_port == 0) {
    error = "cannot listen on 127.0.0.1:" + std::to_string(port);
    return nullptr;
  }
  return server;
}

}  // namespace hops
