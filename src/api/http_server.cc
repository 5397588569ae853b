#include "api/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "proc/ports.h"

namespace tandem {

using SteadyClock = std::chrono::steady_clock;

struct HttpServer::Exchange {
  HttpRequest request;
  bool too_large = false;
  bool started = false;  // the whole request arrived: answered, or given to a worker
  std::optional<HttpResponse> response;
};

namespace {

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

std::string address_text(const sockaddr* address) {
  char text[INET6_ADDRSTRLEN] = {};
  if (address == nullptr) return "";
  if (address->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(address)->sin_addr, text, sizeof text);
  } else if (address->sa_family == AF_INET6) {
    const in6_addr& v6 = reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&v6)) {
      inet_ntop(AF_INET, &v6.s6_addr[12], text, sizeof text);
    } else {
      inet_ntop(AF_INET6, &v6, text, sizeof text);
    }
  }
  return text;
}

MHD_Result collect_header(void* target, MHD_ValueKind, const char* key, const char* value) {
  (*static_cast<std::map<std::string, std::string>*>(target))[lower(key)] = value ? value : "";
  return MHD_YES;
}

MHD_Result collect_param(void* target, MHD_ValueKind, const char* key, const char* value) {
  (*static_cast<std::map<std::string, std::string>*>(target))[key] = value ? value : "";
  return MHD_YES;
}

// Binds the listening socket itself, so that a port in use is told apart from bad TLS material.
Result<int> listen_on(const std::string& host, int port) {
  auto address = socket_address(host, port);
  if (!address) {
    return fail(ErrorCode::kInvalidArgument, fmt::format("'{}' is not an IP address", host));
  }
  int fd = socket(address->address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(ErrorCode::kFailed, fmt::format("socket: {}", strerror(errno)));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, address->get(), address->length) != 0 || listen(fd, 4096) != 0) {
    int error = errno;
    close(fd);
    return fail(error == EADDRINUSE ? ErrorCode::kConflict : ErrorCode::kFailed,
                fmt::format("cannot listen on {}:{}: {}", host, port,
                            error == EADDRINUSE      ? "the port is in use"
                            : error == EADDRNOTAVAIL ? "not an address of this machine"
                                                     : strerror(error)));
  }
  return fd;
}

// Every connection costs a descriptor; the default soft limit (1024) would cap them first.
void raise_descriptor_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

}  // namespace

std::string HttpRequest::param(const std::string& name) const {
  auto it = params.find(name);
  return it == params.end() ? "" : it->second;
}

bool HttpRequest::has_header(const std::string& name) const {
  return headers.contains(lower(name));
}

std::string HttpRequest::header(const std::string& name) const {
  auto it = headers.find(lower(name));
  return it == headers.end() ? "" : it->second;
}

struct MhdCallbacks {
  // A connection the acceptor admitted (and counted) starts or ends in libmicrohttpd.
  static void on_connection(void* cls, MHD_Connection* connection, void**,
                            MHD_ConnectionNotificationCode what) {
    auto* self = static_cast<HttpServer*>(cls);
    std::lock_guard lock(self->guard_mutex_);
    if (what == MHD_CONNECTION_NOTIFY_STARTED) {
      const MHD_ConnectionInfo* fd =
          MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
      auto pending = self->pending_.find(fd ? fd->connect_fd : -1);
      if (pending == self->pending_.end()) return;  // not admitted by the acceptor: untracked
      self->guarded_[connection] = pending->second;
      self->pending_.erase(pending);
      if (auto& deadline = self->guarded_[connection].deadline) self->wake_sweeper_for(*deadline);
      return;
    }
    auto it = self->guarded_.find(connection);
    if (it == self->guarded_.end()) return;
    self->release(it->second);
    self->guarded_.erase(it);
  }

  static MHD_Result on_request(void* cls, MHD_Connection* connection, const char* url,
                               const char* method, const char*, const char* upload,
                               size_t* upload_size, void** state) {
    auto* self = static_cast<HttpServer*>(cls);
    auto* exchange = static_cast<HttpServer::Exchange*>(*state);
    if (exchange == nullptr) {
      exchange = new HttpServer::Exchange;
      HttpRequest& request = exchange->request;
      request.method = method;
      request.path = url;
      MHD_get_connection_values(connection, MHD_HEADER_KIND, collect_header, &request.headers);
      MHD_get_connection_values(connection, MHD_GET_ARGUMENT_KIND, collect_param, &request.params);
      const MHD_ConnectionInfo* address =
          MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
      request.peer = address ? address_text(address->client_addr) : "";
      *state = exchange;
      return MHD_YES;
    }
    if (*upload_size > 0) {
      if (exchange->request.body.size() + *upload_size > self->options_.max_body) {
        exchange->too_large = true;
      } else {
        exchange->request.body.append(upload, *upload_size);
      }
      *upload_size = 0;
      return MHD_YES;
    }
    if (exchange->response) return self->answer(connection, *exchange) ? MHD_YES : MHD_NO;
    if (exchange->started) return MHD_YES;
    exchange->started = true;
    self->arm(connection, false);
    if (exchange->too_large) {
      exchange->response = HttpResponse{.status = 413, .body = R"({"error":"body too large"})"};
    } else if (!self->is_slow_(exchange->request)) {
      exchange->response = self->handle(exchange->request);
    } else {
      self->enqueue(connection, exchange);
      if (!exchange->response) return MHD_YES;  // a worker answers
    }
    return self->answer(connection, *exchange) ? MHD_YES : MHD_NO;
  }

  static void on_completed(void* cls, MHD_Connection* connection, void** state,
                           MHD_RequestTerminationCode) {
    delete static_cast<HttpServer::Exchange*>(*state);
    *state = nullptr;
    // The next request on a kept-alive connection has its own deadline.
    static_cast<HttpServer*>(cls)->arm(connection, true);
  }
};

HttpServer::HttpServer(HttpServerOptions options, std::function<bool(const HttpRequest&)> is_slow,
                       Handler handle)
    : options_(std::move(options)), is_slow_(std::move(is_slow)), handle_(std::move(handle)) {}

HttpServer::~HttpServer() { stop(); }

Status HttpServer::start() {
  raise_descriptor_limit();
  bool tls = !options_.tls_cert_pem.empty();
  // The TLS material is tried before the port is taken, so that each failure says its cause.
  if (tls) {
    MHD_Daemon* trial = MHD_start_daemon(
        MHD_USE_TLS | MHD_USE_NO_LISTEN_SOCKET, 0, nullptr, nullptr, &MhdCallbacks::on_request,
        this, MHD_OPTION_HTTPS_MEM_KEY, options_.tls_key_pem.c_str(), MHD_OPTION_HTTPS_MEM_CERT,
        options_.tls_cert_pem.c_str(), MHD_OPTION_END);
    if (trial == nullptr) {
      return fail(ErrorCode::kInvalidArgument,
                  "the TLS certificate and key are not usable together");
    }
    MHD_stop_daemon(trial);
  }
  auto fd = listen_on(options_.host, options_.port);
  if (!fd) return std::unexpected(fd.error());
  listen_fd_ = *fd;
  // Two event loops: one for the public, one for the reserved addresses (the other agents), so
  // that a ping never waits in a queue that public clients fill. The acceptor hands each
  // connection to one of them.
  public_ = start_daemon(options_.event_threads,
                         options_.public_connections + options_.reserved_connections);
  reserved_ = public_ != nullptr ? start_daemon(1, options_.reserved_connections) : nullptr;
  if (public_ == nullptr || reserved_ == nullptr) {
    if (public_ != nullptr) MHD_stop_daemon(public_);
    public_ = nullptr;
    close(listen_fd_);
    listen_fd_ = -1;
    return fail(ErrorCode::kInvalidArgument,
                tls ? "the TLS certificate and key are not usable together"
                    : "libmicrohttpd did not start");
  }
  stopping_ = false;
  for (int index = 0; index < options_.workers; ++index) workers_.emplace_back([this] { work(); });
  sweeping_ = true;
  sweeper_ = std::thread([this] { sweep(); });
  acceptor_ = std::thread([this] { accept_connections(); });
  return {};
}

MHD_Daemon* HttpServer::start_daemon(int threads, int connections) {
  unsigned flags =
      MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_NO_LISTEN_SOCKET;
  if (!options_.tls_cert_pem.empty()) flags |= MHD_USE_TLS;
  std::vector<MHD_OptionItem> items = {
      {MHD_OPTION_CONNECTION_LIMIT, connections + 8, nullptr},
      // Idle connections are cut by the request deadline (sweep()); this is a backstop.
      {MHD_OPTION_CONNECTION_TIMEOUT, 60, nullptr},
      {MHD_OPTION_NOTIFY_COMPLETED, reinterpret_cast<intptr_t>(&MhdCallbacks::on_completed), this},
      {MHD_OPTION_NOTIFY_CONNECTION, reinterpret_cast<intptr_t>(&MhdCallbacks::on_connection),
       this},
  };
  if (threads > 1) items.push_back({MHD_OPTION_THREAD_POOL_SIZE, threads, nullptr});
  if (!options_.tls_cert_pem.empty()) {
    items.push_back({MHD_OPTION_HTTPS_MEM_KEY, 0, options_.tls_key_pem.data()});
    items.push_back({MHD_OPTION_HTTPS_MEM_CERT, 0, options_.tls_cert_pem.data()});
  }
  items.push_back({MHD_OPTION_END, 0, nullptr});
  return MHD_start_daemon(flags, 0, nullptr, nullptr, &MhdCallbacks::on_request, this,
                          MHD_OPTION_ARRAY, items.data(), MHD_OPTION_END);
}

void HttpServer::accept_connections() {
  while (true) {
    sockaddr_storage address{};
    socklen_t length = sizeof address;
    int fd = accept4(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length,
                     SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      return;  // stop() shut the listening socket down
    }
    std::string peer = address_text(reinterpret_cast<sockaddr*>(&address));
    // Counted here, before libmicrohttpd (which starts connections on its own threads) knows
    // them: the caps hold however fast connections come.
    bool reserved = false;
    {
      std::lock_guard lock(guard_mutex_);
      reserved = options_.reserved_addresses.contains(peer);
      if (auto stale = pending_.find(fd); stale != pending_.end()) {  // never started
        release(stale->second);
        pending_.erase(stale);
      }
      int tracked = static_cast<int>(guarded_.size() + pending_.size());
      bool admitted = reserved ? tracked - public_count_ < options_.reserved_connections
                               : public_count_ < options_.public_connections &&
                                     per_address_[peer] < options_.connections_per_address;
      if (!admitted) {
        ++refused_;
        close(fd);
        continue;
      }
      Guarded guarded{.fd = fd,
                      .address = peer,
                      .reserved = reserved,
                      .deadline = SteadyClock::now() + options_.request_deadline};
      if (!reserved) {
        ++per_address_[peer];
        ++public_count_;
      }
      pending_[fd] = guarded;
    }
    // libmicrohttpd closes the socket itself if it cannot take it.
    if (MHD_add_connection(reserved ? reserved_ : public_, fd,
                           reinterpret_cast<sockaddr*>(&address), length) != MHD_YES) {
      std::lock_guard lock(guard_mutex_);
      if (auto failed = pending_.find(fd); failed != pending_.end()) {
        release(failed->second);
        pending_.erase(failed);
      }
    }
  }
}

void HttpServer::stop() {
  if (public_ == nullptr) return;
  // No new connections: the acceptor's accept() fails once the socket is shut down.
  shutdown(listen_fd_, SHUT_RDWR);
  if (acceptor_.joinable()) acceptor_.join();
  {
    std::lock_guard lock(queue_mutex_);
    stopping_ = true;
  }
  queue_changed_.notify_all();
  for (std::thread& worker : workers_) worker.join();
  workers_.clear();
  {
    std::lock_guard lock(guard_mutex_);
    sweeping_ = false;
    sweep_wakeup_.notify_all();
  }
  if (sweeper_.joinable()) sweeper_.join();
  MHD_stop_daemon(reserved_);
  MHD_stop_daemon(public_);
  reserved_ = public_ = nullptr;
  close(listen_fd_);
  listen_fd_ = -1;
}

void HttpServer::set_reserved_addresses(std::set<std::string> addresses) {
  std::lock_guard lock(guard_mutex_);
  options_.reserved_addresses = std::move(addresses);
}

HttpServerStats HttpServer::stats() {
  std::lock_guard lock(guard_mutex_);
  return {.connections = static_cast<int>(guarded_.size() + pending_.size()),
          .refused = refused_,
          .cut = cut_};
}

bool HttpServer::answer(MHD_Connection* connection, Exchange& exchange) {
  HttpResponse& reply = *exchange.response;
  MHD_Response* response =
      MHD_create_response_from_buffer(reply.body.size(), reply.body.data(), MHD_RESPMEM_MUST_COPY);
  if (response == nullptr) return false;
  MHD_add_response_header(response, "Content-Type", reply.content_type.c_str());
  for (const auto& [name, value] : reply.headers) {
    MHD_add_response_header(response, name.c_str(), value.c_str());
  }
  MHD_Result queued = MHD_queue_response(connection, static_cast<unsigned>(reply.status), response);
  MHD_destroy_response(response);
  return queued == MHD_YES;
}

void HttpServer::enqueue(MHD_Connection* connection, Exchange* exchange) {
  std::lock_guard lock(queue_mutex_);
  if (stopping_ || queue_.size() >= options_.max_queued) {
    exchange->response = HttpResponse{.status = 503, .body = R"({"error":"too busy, retry"})"};
    return;
  }
  // Suspended before a worker can see it, so that its resume always comes after.
  MHD_suspend_connection(connection);
  queue_.emplace_back(connection, exchange);
  queue_changed_.notify_one();
}

void HttpServer::work() {
  while (true) {
    std::unique_lock lock(queue_mutex_);
    queue_changed_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;
    auto [connection, exchange] = queue_.front();
    queue_.pop_front();
    lock.unlock();
    exchange->response = handle(exchange->request);
    MHD_resume_connection(connection);
  }
}

// A handler that throws must not end the agent (an event thread has nowhere to throw to): the
// client gets a 500 that does not repeat the exception's text.
HttpResponse HttpServer::handle(const HttpRequest& request) {
  try {
    return handle_(request);
  } catch (...) {
    return HttpResponse{.status = 500, .body = R"({"error":"internal error"})"};
  }
}

void HttpServer::release(const Guarded& guarded) {
  if (guarded.reserved) return;
  --public_count_;
  if (--per_address_[guarded.address] <= 0) per_address_.erase(guarded.address);
}

void HttpServer::arm(MHD_Connection* connection, bool armed) {
  std::lock_guard lock(guard_mutex_);
  auto it = guarded_.find(connection);
  if (it == guarded_.end()) return;
  it->second.deadline =
      armed ? std::optional(SteadyClock::now() + options_.request_deadline) : std::nullopt;
  if (it->second.deadline) wake_sweeper_for(*it->second.deadline);
}

// REQUIRES: guard_mutex_ held.
void HttpServer::wake_sweeper_for(SteadyClock::time_point deadline) {
  if (!sweep_at_ || deadline < *sweep_at_) sweep_wakeup_.notify_all();
}

// Cuts connections that did not deliver a whole request in time: shutdown() makes libmicrohttpd
// see the end of the stream and close it on its own thread. The descriptor is still open while
// the connection is listed (it is removed, under the same lock, before it is closed).
void HttpServer::sweep() {
  std::unique_lock lock(guard_mutex_);
  while (sweeping_) {
    auto now = SteadyClock::now();
    std::optional<SteadyClock::time_point> next;  // the nearest deadline still ahead
    for (auto& [connection, guarded] : guarded_) {
      if (!guarded.deadline || guarded.fd < 0) continue;
      if (*guarded.deadline <= now) {
        shutdown(guarded.fd, SHUT_RDWR);
        guarded.deadline.reset();
        ++cut_;
      } else if (!next || *guarded.deadline < *next) {
        next = guarded.deadline;
      }
    }
    // Asleep until then, or until an earlier deadline is set (an idle agent's API wakes nobody).
    sweep_at_ = next;
    if (next) {
      sweep_wakeup_.wait_until(lock, *next);
    } else {
      sweep_wakeup_.wait(lock);
    }
  }
}

}  // namespace tandem
