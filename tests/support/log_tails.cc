#include "log_tails.h"

#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>

namespace tandem::testing {

namespace {

bool routine(const std::string& line) {
  return line.find(": a standby of ") != std::string::npos ||
         line.find(": renew it") != std::string::npos;
}

}  // namespace

void print_log_tails(const std::string& dir, std::size_t lines) {
  std::error_code error;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir, error)) {
    const std::filesystem::path& path = entry.path();
    if (path.extension() != ".log" || path.filename().string().starts_with("etcd")) continue;
    std::ifstream in(path);
    std::deque<std::string> tail;
    for (std::string line; std::getline(in, line);) {
      if (routine(line)) continue;
      tail.push_back(line.substr(0, 400));
      if (tail.size() > lines) tail.pop_front();
    }
    std::cerr << "---- the last lines of " << path.string() << "\n";
    for (const std::string& line : tail) std::cerr << line << "\n";
  }
}

}  // namespace tandem::testing
