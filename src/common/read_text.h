// Reading a small file whole without exceptions: a /proc file whose process exits while it is
// read fails with ESRCH, which std::istreambuf_iterator turns into an exception nobody catches
// (the chaos runner died of one; so could an agent reading a postmaster's command line).
#pragma once

#include <optional>
#include <string>

namespace tandem {

// The file's bytes; nullopt if it cannot be opened or read to its end.
std::optional<std::string> read_text(const std::string& path);

}  // namespace tandem
