// ticker: prints "tick N" every interval forever. The interval in milliseconds comes from the
// first argument, else the TICK_MS environment variable, else 1000.
// Build: clang-19 --target=wasm32-wasi -O2 ticker.c -o ticker.wasm
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long interval_ms(int argc, char **argv) {
    const char *text = argc > 1 ? argv[1] : getenv("TICK_MS");
    long ms = text ? strtol(text, NULL, 10) : 0;
    return ms > 0 ? ms : 1000;
}

int main(int argc, char **argv) {
    long ms = interval_ms(argc, argv);
    struct timespec pause = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    printf("ticking every %ld ms\n", ms);
    for (unsigned long n = 1;; n++) {
        printf("tick %lu\n", n);
        // stdout is a pipe-like stream to the log, not a terminal: flush so each tick shows now.
        fflush(stdout);
        nanosleep(&pause, NULL);
    }
}
