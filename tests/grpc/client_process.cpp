// A client in a process of its own, for the connection-drop test: calls hop A once (work_ms
// long) and waits; the test kills it with SIGKILL while the call is in flight.
//   grpc_test_client <host:port> <id> <work_ms>
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "hops.grpc.pb.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: grpc_test_client <host:port> <id> <work_ms>\n");
    return 2;
  }
  auto stub = ctoken_hops::Hop::NewStub(grpc::CreateChannel(argv[1], grpc::InsecureChannelCredentials()));
  ctoken_hops::WorkRequest request;
  request.set_id(argv[2]);
  request.set_work_ms(std::atoll(argv[3]));
  ctoken_hops::WorkReply reply;
  grpc::ClientContext context;
  const grpc::Status status = stub->Work(&context, request, &reply);
  std::printf("status %d\n", static_cast<int>(status.error_code()));
  return status.ok() ? 0 : 1;
}
