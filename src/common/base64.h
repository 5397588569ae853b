// Base64 (RFC 4648, standard alphabet, padded): etcd's JSON gateway carries keys and values so.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace tandem {

std::string base64_encode(std::string_view bytes);
// nullopt for text that is not base64.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace tandem
