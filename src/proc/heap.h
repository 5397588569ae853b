// The process's own heap.
#pragma once

namespace tandem {

// Gives the pages of freed heap memory back to the system (glibc's malloc_trim): what start-up
// built and dropped (the command line's parser, the configuration's YAML) stays counted in a
// long-lived process's memory otherwise (issue 19.2).
void return_free_heap();

}  // namespace tandem
