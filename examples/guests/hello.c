// hello: prints a greeting, its arguments and the GREETING environment variable, then exits 0.
// Build: clang-19 --target=wasm32-wasi -O2 hello.c -o hello.wasm
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    printf("hello from rkube wasm\n");
    // argv[0] is the container's command[0] (or its name when the pod gives no command).
    for (int i = 0; i < argc; i++) {
        printf("arg %d: %s\n", i, argv[i]);
    }
    const char *greeting = getenv("GREETING");
    printf("GREETING=%s\n", greeting ? greeting : "(unset)");
    return 0;
}
