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
  sockaddr_storage address{};
  socklen_t length = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    length = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    length = sizeof(sockaddr_in6);
  } else {
    return fail(ErrorCode::kInvalidArgument, fmt::format("'{}' is not an IP address", host));
  }
  int fd = socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(ErrorCode::kFailed, fmt::format("socket: {}", strerror(errno)));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), length) != 0 || listen(fd, 4096) != 0) {
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
  static MHD_Result accept_policy(void* cls, const sockaddr* address, socklen_t) {
    auto* self = static_cast<HttpServer*>(cls);
    std::string peer = address_text(address);
    const HttpServerOptions& options = self->options_;
    std::lock_guard lock(self->guard_mutex_);
    bool allowed = options.reserved_addresses.contains(peer)
                       ? static_cast<int>(self->guarded_.size()) <
                             options.public_connections + options.reserved_connections
                       : self->public_count_ < options.public_connections &&
                             self->per_address_[peer] < options.connections_per_address;
    if (!allowed) ++self->refused_;
    return allowed ? MHD_YES : MHD_NO;
  }

  static void on_connection(void* cls, MHD_Connection* connection, void**,
                            MHD_ConnectionNotificationCode what) {
    auto* self = static_cast<HttpServer*>(cls);
    std::lock_guard lock(self->guard_mutex_);
    if (what == MHD_CONNECTION_NOTIFY_STARTED) {
      const MHD_ConnectionInfo* fd =
          MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
      const MHD_ConnectionInfo* address =
          MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
      HttpServer::Guarded guarded{.fd = fd ? fd->connect_fd : -1,
                                  .address = address ? address_text(address->client_addr) : ""};
      guarded.reserved = self->options_.reserved_addresses.contains(guarded.address);
      guarded.deadline = SteadyClock::now() + self->options_.request_deadline;
      if (!guarded.reserved) {
        ++self->per_address_[guarded.address];
        ++self->public_count_;
      }
      self->guarded_[connection] = guarded;
      return;
    }
    auto it = self->guarded_.find(connection);
    if (it == self->guarded_.end()) return;
    if (!it->second.reserved) {
      --self->public_count_;
      if (--self->per_address_[it->second.address] <= 0) {
        self->per_address_.erase(it->second.address);
      }
    }
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
      exchange->response = self->handle_(exchange->request);
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
  unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME;
  if (tls) flags |= MHD_USE_TLS;
  std::vector<MHD_OptionItem> items = {
      {MHD_OPTION_LISTEN_SOCKET, listen_fd_, nullptr},
      {MHD_OPTION_THREAD_POOL_SIZE, options_.event_threads, nullptr},
      {MHD_OPTION_CONNECTION_LIMIT, options_.public_connections + options_.reserved_connections + 8,
       nullptr},
      // Idle connections are cut by the request deadline (sweep()); this is a backstop.
      {MHD_OPTION_CONNECTION_TIMEOUT, 60, nullptr},
      {MHD_OPTION_NOTIFY_COMPLETED, reinterpret_cast<intptr_t>(&MhdCallbacks::on_completed), this},
      {MHD_OPTION_NOTIFY_CONNECTION, reinterpret_cast<intptr_t>(&MhdCallbacks::on_connection),
       this},
  };
  if (tls) {
    items.push_back({MHD_OPTION_HTTPS_MEM_KEY, 0, options_.tls_key_pem.data()});
    items.push_back({MHD_OPTION_HTTPS_MEM_CERT, 0, options_.tls_cert_pem.data()});
  }
  items.push_back({MHD_OPTION_END, 0, nullptr});
  daemon_ =
      MHD_start_daemon(flags, 0, &MhdCallbacks::accept_policy, this, &MhdCallbacks::on_request,
                       this, MHD_OPTION_ARRAY, items.data(), MHD_OPTION_END);
  if (daemon_ == nullptr) {
    // libmicrohttpd may have closed the socket on its way out; close it only if still open.
    if (fcntl(listen_fd_, F_GETFD) != -1) close(listen_fd_);
    listen_fd_ = -1;
    return fail(ErrorCode::kInvalidArgument,
                tls ? "the TLS certificate and key are not usable together"
                    : "libmicrohttpd did not start");
  }
  stopping_ = false;
  for (int index = 0; index < options_.workers; ++index) workers_.emplace_back([this] { work(); });
  sweeping_ = true;
  sweeper_ = std::thread([this] { sweep(); });
  return {};
}

void HttpServer::stop() {
  if (daemon_ == nullptr) return;
  // Quiesced, the listening socket is ours to close; otherwise libmicrohttpd closes it.
  if (MHD_quiesce_daemon(daemon_) != listen_fd_) listen_fd_ = -1;
  {
    std::lock_guard lock(queue_mutex_);
    stopping_ = true;
  }
  queue_changed_.notify_all();
  for (std::thread& worker : workers_) worker.join();
  workers_.clear();
  sweeping_ = false;
  {
    std::lock_guard lock(guard_mutex_);
    sweep_wakeup_.notify_all();
  }
  if (sweeper_.joinable()) sweeper_.join();
  MHD_stop_daemon(daemon_);
  daemon_ = nullptr;
  if (listen_fd_ >= 0) close(listen_fd_);
  listen_fd_ = -1;
}

HttpServerStats HttpServer::stats() {
  std::lock_guard lock(guard_mutex_);
  return {.connections = static_cast<int>(guarded_.size()), .refused = refused_, .cut = cut_};
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
    exchange->response = handle_(exchange->request);
    MHD_resume_connection(connection);
  }
}

void HttpServer::arm(MHD_Connection* connection, bool armed) {
  std::lock_guard lock(guard_mutex_);
  auto it = guarded_.find(connection);
  if (it == guarded_.end()) return;
  it->second.deadline =
      armed ? std::optional(SteadyClock::now() + options_.request_deadline) : std::nullopt;
}

// Cuts connections that did not deliver a whole request in time: shutdown() makes libmicrohttpd
// see the end of the stream and close it on its own thread. The descriptor is still open while
// the connection is listed (it is removed, under the same lock, before it is closed).
void HttpServer::sweep() {
  std::unique_lock lock(guard_mutex_);
  while (sweeping_) {
    sweep_wakeup_.wait_for(lock, std::chrono::milliseconds(100));
    auto now = SteadyClock::now();
    for (auto& [connection, guarded] : guarded_) {
      if (guarded.deadline && *guarded.deadline <= now && guarded.fd >= 0) {
        shutdown(guarded.fd, SHUT_RDWR);
        guarded.deadline.reset();
        ++cut_;
      }
    }
  }
}

}  // namespace tandem
