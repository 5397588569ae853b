// Result<T>: the return type of every fallible call that crosses a module boundary.
// Errors carry a code a caller can branch on and a one-line message a person can act on.
#pragma once

#include <expected>
#include <string>
#include <utility>

namespace tandem {

enum class ErrorCode {
  kInvalidArgument,  // bad input from a person or a config file; nothing was changed
  kNotFound,         // a named thing (node, slot, file, binary) does not exist
  kAlreadyExists,    // refusing to overwrite (a data directory, a slot)
  kUnavailable,      // a server or store could not be reached; retrying may help
  kConflict,         // the world is not in the state the operation requires
  kPermissionDenied,
  kTimeout,  // a deadline passed before the expected state was reached
  kFailed,   // a step ran and failed; the message says which and why
};

struct Error {
  ErrorCode code;
  std::string message;
};

template <typename T>
using Result = std::expected<T, Error>;

// Result of an operation that yields nothing on success.
using Status = std::expected<void, Error>;

inline std::unexpected<Error> fail(ErrorCode code, std::string message) {
  return std::unexpected(Error{code, std::move(message)});
}

// Prefixes the error's message with context, keeping its code: "cloning node2: <cause>".
inline std::unexpected<Error> fail_with_context(const Error& cause, std::string_view context) {
  return std::unexpected(Error{cause.code, std::string(context) + ": " + cause.message});
}

}  // namespace tandem
