// busy: spins forever, to show limits.cpu and that a busy guest does not starve its neighbours.
// With a first argument N it prints a counter every 2^N iterations.
// Build: clang-19 --target=wasm32-wasi -O2 busy.c -o busy.wasm
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    int shift = argc > 1 ? atoi(argv[1]) : 0;
    unsigned long long mask = shift > 0 && shift < 63 ? (1ULL << shift) - 1 : 0;
    // volatile keeps the optimiser from removing a loop with no visible effect.
    volatile unsigned long long counter = 0;
    printf("spinning\n");
    fflush(stdout);
    for (;;) {
        counter++;
        if (mask && (counter & mask) == 0) {
            printf("spun %llu\n", counter);
            fflush(stdout);
        }
    }
}
