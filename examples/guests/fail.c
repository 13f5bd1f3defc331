// fail: prints a line and exits with the code given as the first argument, else the
// EXIT_CODE environment variable, else 3. Under restartPolicy Always it crash-loops.
// Build: clang-19 --target=wasm32-wasi -O2 fail.c -o fail.wasm
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    const char *text = argc > 1 ? argv[1] : getenv("EXIT_CODE");
    int code = text ? atoi(text) : 3;
    printf("failing with exit code %d\n", code);
    return code;
}
