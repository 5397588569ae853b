// Logging for tandem: one line per event on stderr, with a timestamp when not on a terminal.
#pragma once

#include <spdlog/spdlog.h>

namespace tandem {

// Sets up the default logger. verbose adds debug lines (each child process tandem runs).
void init_logging(bool verbose);

}  // namespace tandem
