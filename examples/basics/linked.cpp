// A linked source: one token that is cancelled by whichever comes first of several causes.
//
// A request handler typically wants to stop when the client goes away OR the server shuts
// down OR its own deadline passes. Link one source to all of them and hand its token down.
#include <ctoken/ctoken.hpp>

#include <cstdio>

int main() {
  ctoken::CancellationTokenSource server_shutdown;  // lives as long as the server
  ctoken::CancellationTokenSource client_gone;      // one per connection

  for (int request = 1; request <= 3; ++request) {
    // One per request: cancelled by either parent, or by itself.
    auto request_source =
        ctoken::CancellationTokenSource::CreateLinkedTokenSource(server_shutdown.Token(), client_gone.Token());
    ctoken::CancellationToken token = request_source.Token();

    if (request == 2) client_gone.Cancel(ctoken::errc::client_disconnected);
    std::printf("request %d: cancelled=%d reason=\"%s\"\n", request, token.IsCancellationRequested(),
                token.Reason().message().c_str());
    // request_source is destroyed here and unregisters from both parents, so the long-lived
    // server_shutdown source does not collect dead registrations.
  }

  // Cancelling a linked source never cancels its parents.
  auto child = ctoken::CancellationTokenSource::CreateLinkedTokenSource(server_shutdown.Token());
  child.Cancel();
  std::printf("child cancelled, parent still running: %s\n", server_shutdown.IsCancellationRequested() ? "no" : "yes");
  return server_shutdown.IsCancellationRequested() ? 1 : 0;
}
