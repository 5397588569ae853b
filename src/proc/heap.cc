#include "proc/heap.h"

#include <malloc.h>

namespace tandem {

void return_free_heap() { malloc_trim(0); }

}  // namespace tandem
