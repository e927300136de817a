/* memtrim: hands back to the kernel the memory a long-running process touched once (start-up, a burst of
 * requests) and no longer uses, so that its resident set at steady state is what it keeps
 * (docs/launcher-memory.md). */
#pragma once

/* malloc_trim(0) (free pages anywhere in the heap, not only at its top), then, on the main thread, drops
 * the pages of the main stack below the caller's frame (minus a margin) that earlier deeper calls touched.
 * Cheap (one read of /proc/self/maps); call it when idle after a burst, not in a tight loop. */
void kv_memtrim(void);
