#include "dcs/store.h"

namespace tandem {

std::string prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    auto last = static_cast<unsigned char>(end.back());
    if (last < 0xFF) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

Status check_read_prefixes(std::string_view prefix, std::string_view except) {
  if (prefix_end(prefix) == std::string(1, '\0')) {
    return fail(ErrorCode::kInvalidArgument, "a store read needs a prefix with an end");
  }
  if (!except.empty() && (!except.starts_with(prefix) || except == prefix)) {
    return fail(ErrorCode::kInvalidArgument,
                "a store read leaves out only a prefix narrower than the one it reads");
  }
  return {};
}

}  // namespace tandem
