#include "proc/secret_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

namespace tandem {
namespace {

Result<std::string> random_token() {
  std::array<unsigned char, 16> bytes{};
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0 || read(fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) {
    if (fd >= 0) close(fd);
    return fail(ErrorCode::kFailed, "cannot read /dev/urandom");
  }
  close(fd);
  std::string token;
  for (unsigned char byte : bytes) token += fmt::format("{:02x}", byte);
  return token;
}

std::string trimmed(std::string text) {
  auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  auto last = text.find_last_not_of(" \t\r\n");
  return text.substr(first, last - first + 1);
}

}  // namespace

Result<std::string> random_password() {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::array<unsigned char, 32> bytes{};
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  bool read_all =
      fd >= 0 && read(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
  if (fd >= 0) close(fd);
  if (!read_all) return fail(ErrorCode::kFailed, "cannot read /dev/urandom");
  std::string password;
  for (unsigned char byte : bytes) password += kAlphabet[byte % (sizeof(kAlphabet) - 1)];
  return password;
}

Result<std::string> ensure_secret_file(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return read_secret_file(path);
    return fail(ErrorCode::kFailed, fmt::format("cannot create {}: {}", path, strerror(errno)));
  }
  auto token = random_token();
  std::string line = token ? *token + "\n" : "";
  bool written = token && write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  close(fd);
  if (!written) {
    unlink(path.c_str());
    return fail(ErrorCode::kFailed, fmt::format("cannot write {}", path));
  }
  return token;
}

Result<std::string> read_secret_file(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return fail(errno == ENOENT ? ErrorCode::kNotFound : ErrorCode::kPermissionDenied,
                fmt::format("cannot read {}: {}", path, strerror(errno)));
  }
  struct stat info {};
  if (fstat(fd, &info) != 0 || (info.st_mode & 077) != 0) {
    close(fd);
    return fail(ErrorCode::kPermissionDenied,
                fmt::format("{} may be read by others: chmod 600 it", path));
  }
  std::string content;
  char buffer[256];
  ssize_t got;
  while ((got = read(fd, buffer, sizeof buffer)) > 0) content.append(buffer, got);
  close(fd);
  std::string secret = trimmed(content);
  if (secret.empty()) return fail(ErrorCode::kInvalidArgument, fmt::format("{} is empty", path));
  return secret;
}

}  // namespace tandem
