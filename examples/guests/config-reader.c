// config-reader: prints the contents of a file from a mounted volume, then sleeps forever so
// the pod stays Running (or exits 0 when the second argument is "exit").
// The file is the first argument, else the CONFIG_FILE environment variable, else
// /config/greeting.
// Build: clang-19 --target=wasm32-wasi -O2 config-reader.c -o config-reader.wasm
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : getenv("CONFIG_FILE");
    if (!path) {
        path = "/config/greeting";
    }
    FILE *file = fopen(path, "r");
    if (!file) {
        perror(path);
        return 1;
    }
    printf("%s: ", path);
    char buffer[4096];
    size_t n;
    while ((n = fread(buffer, 1, sizeof buffer, file)) > 0) {
        fwrite(buffer, 1, n, stdout);
    }
    fclose(file);
    printf("\n");
    fflush(stdout);
    if (argc > 2 && strcmp(argv[2], "exit") == 0) {
        return 0;
    }
    for (;;) {
        sleep(3600);
    }
}
