// Which node of the cluster is its running primary.
#pragma once

#include <string_view>

#include "ops/context.h"

namespace tandem {

// The one running primary other than `except`; errors when none or several run.
Result<const NodeConfig*> find_primary(Context& context, std::string_view except = {});

}  // namespace tandem
