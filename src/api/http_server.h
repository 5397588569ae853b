// An HTTP(S) server that slow or idle clients cannot stop: libmicrohttpd's event loops (epoll)
// hold every connection without a thread of its own, a connection that has not sent a whole
// request within a deadline is cut, each client address may hold only a few connections, and
// some addresses (the other agents, whose pings fencing depends on) have an event loop and
// connections of their own that public clients cannot take: one acceptor hands each connection
// to the loop of its kind. Handlers that may wait (a store read, a switchover) run on a small pool
// of workers while their connection is suspended; the others answer on the event threads at once.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"

struct MHD_Daemon;
struct MHD_Connection;

namespace tandem {

struct HttpRequest {
  std::string method;                          // "GET", "POST", ...
  std::string path;                            // percent-decoded; may hold any byte
  std::map<std::string, std::string> params;   // query, percent-decoded
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
  std::string peer;  // the client's address

  bool has_param(const std::string& name) const { return params.contains(name); }
  std::string param(const std::string& name) const;
  bool has_header(const std::string& name) const;
  std::string header(const std::string& name) const;  // "" when absent
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
};

struct HttpServerOptions {
  std::string host;
  int port = 0;
  std::string tls_cert_pem;  // both set: HTTPS
  std::string tls_key_pem;
  // A connection must deliver each whole request (headers and body) this soon after it opened
  // or after its previous answer; otherwise it is closed.
  std::chrono::milliseconds request_deadline{5000};
  int connections_per_address = 64;          // public clients, per address
  int public_connections = 4000;             // public clients, in all
  int reserved_connections = 256;            // on top, for reserved addresses only
  std::set<std::string> reserved_addresses;  // never limited per address
  std::size_t max_body = 64 * 1024;
  int event_threads = 2;
  int workers = 4;
  std::size_t max_queued = 256;  // slow requests waiting for a worker; beyond, 503
};

// What the server holds now; for benchmarks and tests.
struct HttpServerStats {
  int connections = 0;
  int refused = 0;  // connections refused by the caps, since start
  int cut = 0;      // connections closed for missing the request deadline, since start
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;
  // `is_slow` says, from the request, whether `handle` may block; it must not block itself.
  HttpServer(HttpServerOptions options, std::function<bool(const HttpRequest&)> is_slow,
             Handler handle);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds host:port and serves. An error names the port (in use, not an address here) or the
  // TLS material that does not work.
  Status start();
  // Waits for running handlers, then closes every connection.
  void stop();
  HttpServerStats stats();
  // The members changed: the addresses whose connections are reserved (the other agents').
  void set_reserved_addresses(std::set<std::string> addresses);

 private:
  struct Exchange;
  struct Guarded {
    int fd = -1;
    std::string address;
    bool reserved = false;
    std::optional<std::chrono::steady_clock::time_point> deadline;
  };

  friend struct MhdCallbacks;  // libmicrohttpd's callbacks, in http_server.cc

  MHD_Daemon* start_daemon(int threads, int connections);
  void accept_connections();
  bool answer(MHD_Connection* connection, Exchange& exchange);
  HttpResponse handle(const HttpRequest& request);
  void enqueue(MHD_Connection* connection, Exchange* exchange);
  void work();
  void sweep();
  void arm(MHD_Connection* connection, bool armed);
  // REQUIRES: guard_mutex_ held. Uncounts a connection that ends.
  void release(const Guarded& guarded);

  HttpServerOptions options_;
  std::function<bool(const HttpRequest&)> is_slow_;
  Handler handle_;
  MHD_Daemon* public_ = nullptr;    // every other client
  MHD_Daemon* reserved_ = nullptr;  // the reserved addresses: an event thread of their own
  int listen_fd_ = -1;

  std::mutex guard_mutex_;  // guards guarded_, per_address_, the counters
  std::map<MHD_Connection*, Guarded> guarded_;
  std::map<int, Guarded> pending_;  // admitted by the acceptor, not yet started (by descriptor)
  std::map<std::string, int> per_address_;
  int public_count_ = 0;
  int refused_ = 0;
  int cut_ = 0;

  std::mutex queue_mutex_;
  std::condition_variable queue_changed_;
  std::deque<std::pair<MHD_Connection*, Exchange*>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
  std::thread sweeper_;
  std::thread acceptor_;
  std::atomic<bool> sweeping_{false};
  std::condition_variable sweep_wakeup_;
  // When the sweeper wakes next (nullopt: not before it is woken); guarded by guard_mutex_. A
  // deadline set later than that needs no wake-up: requests come and go without one.
  std::optional<std::chrono::steady_clock::time_point> sweep_at_;
  void wake_sweeper_for(std::chrono::steady_clock::time_point deadline);
};

}  // namespace tandem
