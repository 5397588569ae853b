// The dashboard's files, compiled into the binary (no CDN, no files to install beside it).
#pragma once

#include <string_view>

namespace tandem {

struct Asset {
  std::string_view path;  // URL path, "/index.html"
  std::string_view content_type;
  std::string_view body;
};

// The asset served at `path` ("/" is "/index.html"), or nullptr.
const Asset* find_asset(std::string_view path);

}  // namespace tandem
