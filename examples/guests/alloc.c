// alloc: allocates and touches memory 1 MiB at a time, printing the total, until malloc fails
// (then it exits 1) or the runtime stops it at its memory limit (OOMKilled).
// Build: clang-19 --target=wasm32-wasi -O2 alloc.c -o alloc.wasm
#include <stdio.h>
#include <stdlib.h>

#define MIB (1024 * 1024)
#define PAGE 4096

// Each block links to the one before, and the newest is kept in a volatile global: without a
// visible use the compiler would drop the allocations altogether.
static void *volatile newest;

int main(void) {
    for (unsigned long total = 1;; total++) {
        char *block = malloc(MIB);
        if (!block) {
            printf("malloc failed after %lu MiB\n", total - 1);
            return 1;
        }
        *(void **)block = newest;
        newest = block;
        // Touch every page so the memory is really used, not just reserved.
        for (size_t offset = PAGE; offset < MIB; offset += PAGE) {
            ((volatile char *)block)[offset] = (char)total;
        }
        printf("allocated %lu MiB\n", total);
        fflush(stdout);
    }
}
