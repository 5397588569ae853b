#include "pg/connection.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace tandem {
namespace {

// libpq messages end with a newline and may span lines; a person wants one line.
std::string one_line(const char* message) {
  std::string text = message ? message : "";
  std::replace(text.begin(), text.end(), '\n', ' ');
  while (!text.empty() && text.back() == ' ') text.pop_back();
  return text;
}

}  // namespace

std::string make_conninfo(const std::map<std::string, std::string>& parameters) {
  std::string conninfo;
  for (const auto& [key, value] : parameters) {
    std::string quoted;
    for (char c : value) {
      if (c == '\\' || c == '\'') quoted += '\\';
      quoted += c;
    }
    if (!conninfo.empty()) conninfo += ' ';
    conninfo += fmt::format("{}='{}'", key, quoted);
  }
  return conninfo;
}

std::optional<std::map<std::string, std::string>> parse_conninfo(const std::string& conninfo) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (options == nullptr) {
    PQfreemem(error);
    return std::nullopt;
  }
  std::map<std::string, std::string> parameters;
  for (PQconninfoOption* option = options; option->keyword != nullptr; ++option) {
    if (option->val != nullptr) parameters[option->keyword] = option->val;
  }
  PQconninfoFree(options);
  return parameters;
}

const std::optional<std::string>& QueryResult::get(std::size_t row, std::string_view column) const {
  auto it = std::find(columns_.begin(), columns_.end(), column);
  return rows_.at(row).at(static_cast<std::size_t>(it - columns_.begin()));
}

std::string QueryResult::text(std::size_t row, std::string_view column) const {
  return get(row, column).value_or("");
}

Result<Connection> Connection::open(const std::string& conninfo) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  Connection connection(conn);
  if (conn == nullptr) return fail(ErrorCode::kFailed, "libpq could not allocate a connection");
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string message = one_line(PQerrorMessage(conn));
    // "password authentication failed", "Peer authentication failed", ...
    bool refused = message.find("authentication failed") != std::string::npos ||
                   message.find("no pg_hba.conf entry") != std::string::npos;
    return fail(refused ? ErrorCode::kPermissionDenied : ErrorCode::kUnavailable, message);
  }
  // Notices and the server's last word to a connection it ends ("terminating connection due to
  // administrator command") would go to stderr, in the middle of a command's output: to the
  // debug log instead (a failed query reports the error itself).
  PQsetNoticeProcessor(
      conn, [](void*, const char* message) { spdlog::debug("PostgreSQL: {}", one_line(message)); },
      nullptr);
  return connection;
}

Result<QueryResult> Connection::query(const std::string& sql,
                                      const std::vector<std::string>& parameters) {
  std::vector<const char*> values;
  for (const std::string& parameter : parameters) values.push_back(parameter.c_str());
  std::unique_ptr<PGresult, decltype(&PQclear)> result(
      PQexecParams(conn_.get(), sql.c_str(), static_cast<int>(values.size()), nullptr,
                   values.data(), nullptr, nullptr, 0),
      &PQclear);
  ExecStatusType status = PQresultStatus(result.get());
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
    std::string message = one_line(PQresultErrorMessage(result.get()));
    if (message.empty()) message = one_line(PQerrorMessage(conn_.get()));
    ErrorCode code =
        PQstatus(conn_.get()) == CONNECTION_OK ? ErrorCode::kFailed : ErrorCode::kUnavailable;
    return fail(code, message);
  }
  std::vector<std::string> columns;
  for (int column = 0; column < PQnfields(result.get()); ++column) {
    columns.emplace_back(PQfname(result.get(), column));
  }
  std::vector<std::vector<std::optional<std::string>>> rows;
  for (int row = 0; row < PQntuples(result.get()); ++row) {
    std::vector<std::optional<std::string>> values_of_row;
    for (int column = 0; column < PQnfields(result.get()); ++column) {
      if (PQgetisnull(result.get(), row, column)) {
        values_of_row.emplace_back(std::nullopt);
      } else {
        values_of_row.emplace_back(PQgetvalue(result.get(), row, column));
      }
    }
    rows.push_back(std::move(values_of_row));
  }
  return QueryResult(std::move(columns), std::move(rows));
}

bool Connection::usable() const { return PQstatus(conn_.get()) == CONNECTION_OK; }

Status Connection::execute(const std::string& sql) {
  std::unique_ptr<PGresult, decltype(&PQclear)> result(PQexec(conn_.get(), sql.c_str()), &PQclear);
  ExecStatusType status = PQresultStatus(result.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    std::string message = one_line(PQresultErrorMessage(result.get()));
    if (message.empty()) message = one_line(PQerrorMessage(conn_.get()));
    return fail(
        PQstatus(conn_.get()) == CONNECTION_OK ? ErrorCode::kFailed : ErrorCode::kUnavailable,
        message);
  }
  return {};
}

Result<std::string> Connection::encrypt_password(const std::string& password,
                                                 const std::string& role) {
  char* verifier =
      PQencryptPasswordConn(conn_.get(), password.c_str(), role.c_str(), "scram-sha-256");
  if (verifier == nullptr) {
    return fail(ErrorCode::kFailed, fmt::format("cannot encrypt the password: {}",
                                                one_line(PQerrorMessage(conn_.get()))));
  }
  std::string result(verifier);
  PQfreemem(verifier);
  return result;
}

}  // namespace tandem
