#include "dcs/etcd_store.h"

#include <fmt/format.h>
#include <httplib.h>

#include <functional>
#include <nlohmann/json.hpp>

#include "common/base64.h"

namespace tandem {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

std::int64_t number(const json& object, const char* key) {
  auto found = object.find(key);
  if (found == object.end()) return 0;  // proto3 leaves zero values out
  if (found->is_string()) return std::stoll(found->get<std::string>());
  if (found->is_number()) return found->get<std::int64_t>();
  return 0;
}

std::string text(const json& object, const char* key) {
  auto found = object.find(key);
  if (found == object.end() || !found->is_string()) return "";
  return base64_decode(found->get<std::string>()).value_or("");
}

Error unavailable(const std::string& what) { return {ErrorCode::kUnavailable, "etcd: " + what}; }

// A POST whose answer is read even when httplib cannot finish it: etcd's gateway ends its error
// answers with an HTTP trailer that httplib does not parse; the status and body arrive before.
struct Answer {
  int status = 0;  // 0: no answer at all
  std::string body;
  std::string error;
};

// `on_chunk`, if given, sees the body as it streams in and may stop it by returning false.
Answer post(httplib::Client& client, const std::string& path, const httplib::Headers& headers,
            const std::string& body, const std::function<bool(std::string_view)>& on_chunk = {}) {
  Answer answer;
  httplib::Request request;
  request.method = "POST";
  request.path = path;
  request.headers = headers;
  request.body = body;
  request.set_header("Content-Type", "application/json");
  request.response_handler = [&](const httplib::Response& response) {
    answer.status = response.status;
    return true;
  };
  request.content_receiver = [&](const char* data, std::size_t length, std::uint64_t,
                                 std::uint64_t) {
    if (on_chunk) return on_chunk(std::string_view(data, length));
    answer.body.append(data, length);
    return true;
  };
  httplib::Response response;
  httplib::Error error = httplib::Error::Success;
  if (!client.send(request, response, error) && answer.status == 0) {
    answer.error = httplib::to_string(error);
  }
  return answer;
}

json put_request(const std::string& key, const std::string& value, std::int64_t lease) {
  json put = {{"key", base64_encode(key)}, {"value", base64_encode(value)}};
  if (lease != 0) put["lease"] = std::to_string(lease);
  return put;
}

}  // namespace

Result<std::unique_ptr<EtcdStore>> EtcdStore::open(EtcdOptions options, Clock& clock) {
  if (options.endpoints.empty()) {
    return fail(ErrorCode::kInvalidArgument, "etcd: no endpoints");
  }
  for (const std::string& endpoint : options.endpoints) {
    if (!endpoint.starts_with("http://") && !endpoint.starts_with("https://")) {
      return fail(ErrorCode::kInvalidArgument,
                  fmt::format("etcd endpoint '{}' must start with http:// or https://", endpoint));
    }
  }
  std::unique_ptr<EtcdStore> store(new EtcdStore(std::move(options), clock));
  for (std::size_t index = 0; index < store->options_.endpoints.size(); ++index) {
    store->clients_.push_back(store->make_client(index, store->options_.request_timeout));
  }
  return store;
}

EtcdStore::EtcdStore(EtcdOptions options, Clock& clock)
    : options_(std::move(options)), clock_(clock) {}

EtcdStore::~EtcdStore() = default;

std::unique_ptr<httplib::Client> EtcdStore::make_client(std::size_t endpoint,
                                                        milliseconds read_timeout) const {
  auto client = options_.cert_file.empty()
                    ? std::make_unique<httplib::Client>(options_.endpoints[endpoint])
                    : std::make_unique<httplib::Client>(options_.endpoints[endpoint],
                                                        options_.cert_file, options_.key_file);
  client->set_connection_timeout(options_.request_timeout);
  client->set_read_timeout(read_timeout);
  client->set_write_timeout(options_.request_timeout);
  client->set_keep_alive(true);
  // A request is written in two sends (its headers, then its JSON body): with Nagle's algorithm
  // on, the body waits for the headers' ACK, which etcd's side delays (~40 ms on Linux), so every
  // request took 45 ms on loopback and a failover's dozen took half a second.
  client->set_tcp_nodelay(true);
  if (!options_.ca_file.empty()) {
    client->set_ca_cert_path(options_.ca_file.c_str());
    client->enable_server_certificate_verification(true);
  }
  return client;
}

Status EtcdStore::authenticate(std::size_t endpoint) {
  if (options_.user.empty()) return {};
  json body = {{"name", options_.user}, {"password", options_.password}};
  // etcd checks the password with bcrypt: slower than any other request. Once per token.
  auto client = make_client(endpoint, std::chrono::seconds(5));
  Answer reply = post(*client, "/v3/auth/authenticate", {}, body.dump());
  if (reply.status == 0) return std::unexpected(unavailable(reply.error));
  json object = json::parse(reply.body, nullptr, false);
  if (reply.status != 200 || !object.is_object() || !object.contains("token")) {
    return fail(ErrorCode::kPermissionDenied,
                fmt::format("etcd refused the user {}: {}", options_.user,
                            object.is_object() ? object.value("message", reply.body) : reply.body));
  }
  token_ = object["token"].get<std::string>();
  return {};
}

Result<std::string> EtcdStore::call_once(std::size_t endpoint, const std::string& path,
                                         const std::string& body) {
  if (!options_.user.empty() && token_.empty()) {
    if (auto ok = authenticate(endpoint); !ok) return std::unexpected(ok.error());
  }
  httplib::Headers headers;
  if (!token_.empty()) headers.emplace("Authorization", token_);
  Answer reply = post(*clients_[endpoint], path, headers, body);
  if (reply.status == 0) return std::unexpected(unavailable(reply.error));
  if (reply.status == 200) return reply.body;
  json object = json::parse(reply.body, nullptr, false);
  std::string message = object.is_object() ? object.value("message", reply.body) : reply.body;
  if (message.find("invalid auth token") != std::string::npos && !options_.user.empty()) {
    token_.clear();
    return std::unexpected(unavailable("auth token expired"));
  }
  if (message.find("permission denied") != std::string::npos ||
      message.find("user name is empty") != std::string::npos) {
    return fail(ErrorCode::kPermissionDenied, "etcd: " + message);
  }
  // No leader, timeouts, too many requests: this member cannot serve now; another may.
  return std::unexpected(unavailable(
      fmt::format("{} answered {}: {}", options_.endpoints[endpoint], reply.status, message)));
}

Result<std::string> EtcdStore::call(const std::string& path, const std::string& body) {
  std::lock_guard lock(mutex_);
  Error last{ErrorCode::kUnavailable, "etcd: no endpoint tried"};
  for (std::size_t attempt = 0; attempt < clients_.size(); ++attempt) {
    std::size_t endpoint = (current_ + attempt) % clients_.size();
    auto reply = call_once(endpoint, path, body);
    if (reply) {
      current_ = endpoint;
      return reply;
    }
    if (reply.error().code != ErrorCode::kUnavailable) return reply;
    last = reply.error();
  }
  return std::unexpected(last);
}

// A key's lease is renewed before the key is written: the TTL runs from the keepalive, which
// etcd applies after the caller sent the write (a lease keeper counts a renewal as of then), so
// the key never expires before its TTL. A write that then fails (lost compare-and-set, etcd out
// of reach) has kept the key alive only if this store wrote it last (see ARCHITECTURE).
Result<std::int64_t> EtcdStore::lease_for(const std::string& key, Ttl ttl) {
  if (!ttl) return 0;
  // Whole seconds, rounded up: a key never expires before its TTL.
  auto seconds = std::max<std::int64_t>(1, (ttl->count() + 999) / 1000);
  std::lock_guard lock(lease_mutex_);
  auto kept = leases_.find(key);
  if (kept != leases_.end() && kept->second.seconds == seconds) {
    auto alive = keep_alive(kept->second.id);
    if (!alive) return std::unexpected(alive.error());
    if (*alive) return kept->second.id;
  }
  auto granted = grant(seconds);
  if (!granted) return granted;
  leases_[key] = {.id = *granted, .seconds = seconds};
  return *granted;
}

Result<std::int64_t> EtcdStore::grant(std::int64_t seconds) {
  auto reply = call("/v3/lease/grant", json{{"TTL", std::to_string(seconds)}}.dump());
  if (!reply) return std::unexpected(reply.error());
  json object = json::parse(*reply, nullptr, false);
  std::int64_t id = object.is_object() ? number(object, "ID") : 0;
  if (id == 0) return std::unexpected(unavailable("lease grant without an ID: " + *reply));
  return id;
}

Result<bool> EtcdStore::keep_alive(std::int64_t lease) {
  // A stream on the gateway: one request in, one answer out, and the stream ends.
  auto reply = call("/v3/lease/keepalive", json{{"ID", std::to_string(lease)}}.dump());
  if (!reply) return std::unexpected(reply.error());
  json object = json::parse(reply->substr(0, reply->find('\n')), nullptr, false);
  if (!object.is_object() || !object.contains("result")) {
    return std::unexpected(unavailable("lease keepalive: " + *reply));
  }
  return number(object["result"], "TTL") > 0;  // an unknown lease comes back without a TTL
}

// Without `except`, one range. With it, the two ranges either side of it in one transaction, so
// at one revision: etcd reads a range of keys only, and [prefix, except) and [past except, past
// prefix) are that range without `except`.
Result<StoreSnapshot> EtcdStore::read(std::string_view prefix, std::string_view except) {
  if (auto ok = check_read_prefixes(prefix, except); !ok) return std::unexpected(ok.error());
  auto range = [](std::string_view from, std::string_view to) {
    return json{{"key", base64_encode(from)}, {"range_end", base64_encode(to)}};
  };
  std::string end = prefix_end(prefix);
  json object;
  std::vector<const json*> ranges;
  if (except.empty()) {
    auto reply = call("/v3/kv/range", range(prefix, end).dump());
    if (!reply) return std::unexpected(reply.error());
    object = json::parse(*reply, nullptr, false);
    if (!object.is_object()) return std::unexpected(unavailable("range: not JSON"));
    ranges.push_back(&object);
  } else {
    json request = {
        {"success", json::array({{{"request_range", range(prefix, except)}},
                                 {{"request_range", range(prefix_end(except), end)}}})}};
    auto reply = call("/v3/kv/txn", request.dump());
    if (!reply) return std::unexpected(reply.error());
    object = json::parse(*reply, nullptr, false);
    if (!object.is_object() || !object.value("succeeded", false)) {
      return std::unexpected(unavailable("ranges: not JSON"));
    }
    // By reference: value() would copy, and the pointers kept would outlive the copy.
    auto responses = object.find("responses");
    if (responses != object.end() && responses->is_array()) {
      for (const json& response : *responses) {
        auto found = response.find("response_range");
        if (found != response.end() && found->is_object()) ranges.push_back(&*found);
      }
    }
    if (ranges.size() != 2) return std::unexpected(unavailable("range: not two answers"));
  }
  StoreSnapshot snapshot;
  snapshot.revision = number(object.value("header", json::object()), "revision");
  for (const json* answer : ranges) {
    for (const json& kv : answer->value("kvs", json::array())) {
      snapshot.entries[text(kv, "key")] = {.value = text(kv, "value"),
                                           .mod_revision = number(kv, "mod_revision"),
                                           .create_revision = number(kv, "create_revision")};
    }
  }
  return snapshot;
}

// One transaction: if `compare` holds for `key`, put the value (bound to the key's lease, renewed
// for the TTL).
Result<Revision> EtcdStore::write_if(const std::string& compare, const std::string& key,
                                     const std::string& value, Ttl ttl) {
  auto lease = lease_for(key, ttl);
  if (!lease) return std::unexpected(lease.error());
  json condition = json::parse(compare);
  condition["key"] = base64_encode(key);
  json request = {{"compare", json::array({condition})},
                  {"success", json::array({{{"request_put", put_request(key, value, *lease)}}})}};
  auto reply = call("/v3/kv/txn", request.dump());
  if (!reply) return std::unexpected(reply.error());
  json object = json::parse(*reply, nullptr, false);
  if (!object.is_object()) return std::unexpected(unavailable("txn: not JSON"));
  if (!object.value("succeeded", false)) {
    return fail(ErrorCode::kConflict, fmt::format("{} changed meanwhile", key));
  }
  return number(object.value("header", json::object()), "revision");
}

Result<Revision> EtcdStore::create(const std::string& key, const std::string& value, Ttl ttl) {
  auto written = write_if(R"({"target": "CREATE", "result": "EQUAL", "create_revision": "0"})", key,
                          value, ttl);
  if (!written && written.error().code == ErrorCode::kConflict) {
    return fail(ErrorCode::kConflict, key + " exists");
  }
  return written;
}

Result<Revision> EtcdStore::compare_and_set(const std::string& key, const std::string& value,
                                            Revision expected, Ttl ttl) {
  return write_if(
      fmt::format(R"({{"target": "MOD", "result": "EQUAL", "mod_revision": "{}"}})", expected), key,
      value, ttl);
}

Result<Revision> EtcdStore::put(const std::string& key, const std::string& value, Ttl ttl) {
  auto lease = lease_for(key, ttl);
  if (!lease) return std::unexpected(lease.error());
  auto reply = call("/v3/kv/put", put_request(key, value, *lease).dump());
  if (!reply) return std::unexpected(reply.error());
  json object = json::parse(*reply, nullptr, false);
  if (!object.is_object()) return std::unexpected(unavailable("put: not JSON"));
  return number(object.value("header", json::object()), "revision");
}

Status EtcdStore::remove(const std::string& key, std::optional<Revision> expected) {
  json delete_range = {{"key", base64_encode(key)}};
  if (!expected) {
    auto reply = call("/v3/kv/deleterange", delete_range.dump());
    if (!reply) return std::unexpected(reply.error());
    return {};
  }
  json request = {{"compare", json::array({{{"target", "MOD"},
                                            {"result", "EQUAL"},
                                            {"key", base64_encode(key)},
                                            {"mod_revision", std::to_string(*expected)}}})},
                  {"success", json::array({{{"request_delete_range", delete_range}}})}};
  auto reply = call("/v3/kv/txn", request.dump());
  if (!reply) return std::unexpected(reply.error());
  json object = json::parse(*reply, nullptr, false);
  if (!object.is_object() || !object.value("succeeded", false)) {
    return fail(ErrorCode::kConflict, fmt::format("{} changed or is gone", key));
  }
  return {};
}

Result<Revision> EtcdStore::wait(std::string_view prefix, Revision after, milliseconds timeout) {
  // A watch from the revision after `after`: what happened since is delivered at once, the
  // rest as it happens (an expired lease's keys as deletions). Its own connection: the stream
  // must not hold up the other requests.
  json request = {{"create_request",
                   {{"key", base64_encode(prefix)},
                    {"range_end", base64_encode(prefix_end(prefix))},
                    {"start_revision", std::to_string(after + 1)}}}};
  std::size_t endpoint;
  std::string token;
  {
    std::lock_guard lock(mutex_);
    endpoint = current_;
    token = token_;
  }
  // The deadline is the Clock's; the stream's read timeout (real) ends a watch that sees nothing.
  auto deadline = clock_.steady_now() + timeout;
  auto client = make_client(endpoint, timeout);
  Revision seen = 0;
  std::string buffer;
  httplib::Headers headers;
  if (!token.empty()) headers.emplace("Authorization", token);
  (void)post(*client, "/v3/watch", headers, request.dump(), [&](std::string_view chunk) {
    buffer.append(chunk);
    std::size_t newline;
    while ((newline = buffer.find('\n')) != std::string::npos) {
      json message = json::parse(buffer.substr(0, newline), nullptr, false);
      buffer.erase(0, newline + 1);
      if (!message.is_object()) continue;
      const json& result = message.value("result", json::object());
      if (result.contains("events") && !result["events"].empty()) {
        seen = number(result.value("header", json::object()), "revision");
        return false;  // enough: stop the stream
      }
      if (result.value("canceled", false)) return false;  // compacted: fall back to a read
    }
    return clock_.steady_now() < deadline;
  });
  if (seen != 0) return seen;
  // Timed out or cancelled: the current revision.
  auto snapshot = read(prefix);
  if (!snapshot) return std::unexpected(snapshot.error());
  return snapshot->revision;
}

}  // namespace tandem
