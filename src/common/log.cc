#include "common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <unistd.h>

namespace tandem {

void init_logging(bool verbose) {
  auto logger = spdlog::stderr_color_mt("tandem");
  // On a terminal a person reads the lines as they come; in a file a timestamp matters.
  if (isatty(STDERR_FILENO)) {
    logger->set_pattern("%^%l%$: %v");
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %l: %v");
  }
  logger->set_level(verbose ? spdlog::level::debug : spdlog::level::info);
  spdlog::set_default_logger(logger);
}

}  // namespace tandem
