//! Test guests as WebAssembly text: WASI preview 1 command modules.

use rkube_harness::wasi_module as module;

/// Prints `hello` and exits 0.
pub fn hello() -> String {
    module(
        r"hello\n",
        "(call $print (i32.const 1) (i32.const 1024) (i32.const 6))",
    )
}

/// Exits with `code` at once.
pub fn exits(code: i32) -> String {
    module("", &format!("(call $proc_exit (i32.const {code}))"))
}

/// Prints `up` and sleeps for an hour: a long-running server.
pub fn serves() -> String {
    module(
        r"up\n",
        "(call $print (i32.const 1) (i32.const 1024) (i32.const 3))
         (call $sleep (i64.const 3600000000000))",
    )
}

/// Run as the container (argv[0] alone), prints `up` and sleeps for an hour; run as an exec
/// `[name, digit]`, exits at once with that digit: a server with a scriptable health check.
pub fn checks() -> String {
    module(
        r"up\n",
        "(drop (call $args_sizes_get (i32.const 16) (i32.const 20)))
         (if (i32.gt_u (i32.load (i32.const 16)) (i32.const 1))
           (then
             (drop (call $args_get (i32.const 2048) (i32.const 4096)))
             (call $proc_exit (i32.sub (i32.load8_u (i32.load (i32.const 2052))) (i32.const 48)))))
         (call $print (i32.const 1) (i32.const 1024) (i32.const 3))
         (call $sleep (i64.const 3600000000000))",
    )
}

/// Prints the file `data.txt` of its first preopened directory; exits with the errno on failure.
pub fn reads_file() -> String {
    reads_file_named("data.txt")
}

/// Prints the file `name` of its first preopened directory; exits with the errno on failure.
pub fn reads_file_named(name: &str) -> String {
    module(
        name,
        &format!("(local $errno i32)
         (local.set $errno (call $path_open (i32.const 3) (i32.const 1) (i32.const 1024) (i32.const {})
           (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 32)))
         (if (local.get $errno) (then (call $proc_exit (local.get $errno))))
         (i32.store (i32.const 40) (i32.const 4096))
         (i32.store (i32.const 44) (i32.const 4096))
         (local.set $errno (call $fd_read (i32.load (i32.const 32)) (i32.const 40) (i32.const 1) (i32.const 48)))
         (if (local.get $errno) (then (call $proc_exit (local.get $errno))))
         (call $print (i32.const 1) (i32.const 4096) (i32.load (i32.const 48)))",
            name.len()
        ),
    )
}

/// Prints its environment (NUL-separated `NAME=value` entries) and exits 0.
pub fn prints_env() -> String {
    module(
        "",
        "(drop (call $environ_sizes_get (i32.const 24) (i32.const 28)))
         (drop (call $environ_get (i32.const 2048) (i32.const 8192)))
         (call $print (i32.const 1) (i32.const 8192) (i32.load (i32.const 28)))",
    )
}

/// Run as the container (argv[0] alone), prints `up` and sleeps for an hour; run as an exec
/// with arguments, copies stdin to stdout, writes `err` to stderr and exits with argc - 2.
pub fn echoes() -> String {
    module(
        r"up\nerr\n",
        "(drop (call $args_sizes_get (i32.const 16) (i32.const 20)))
         (if (i32.eq (i32.load (i32.const 16)) (i32.const 1))
           (then
             (call $print (i32.const 1) (i32.const 1024) (i32.const 3))
             (call $sleep (i64.const 3600000000000))
             (return)))
         (block $done
           (loop $copy
             (i32.store (i32.const 40) (i32.const 4096))
             (i32.store (i32.const 44) (i32.const 4096))
             (br_if $done (call $fd_read (i32.const 0) (i32.const 40) (i32.const 1) (i32.const 48)))
             (br_if $done (i32.eqz (i32.load (i32.const 48))))
             (call $print (i32.const 1) (i32.const 4096) (i32.load (i32.const 48)))
             (br $copy)))
         (call $print (i32.const 2) (i32.const 1027) (i32.const 4))
         (call $proc_exit (i32.sub (i32.load (i32.const 16)) (i32.const 2)))",
    )
}

/// Prints `first`, waits a second and a half, prints `second` and exits.
pub fn two_lines() -> String {
    module(
        r"first\nsecond\n",
        "(call $print (i32.const 1) (i32.const 1024) (i32.const 6))
         (call $sleep (i64.const 1500000000))
         (call $print (i32.const 1) (i32.const 1030) (i32.const 7))",
    )
}
