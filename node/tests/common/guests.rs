//! Test guests as WebAssembly text: WASI preview 1 command modules.

/// Imports every guest shares, `$print(fd, ptr, len)` and `$sleep(ns)`; data from 1024 on.
fn module(data: &str, body: &str) -> String {
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 1024) "{data}")
  (func $print (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func $sleep (param $ns i64)
    (i64.store (i32.const 64) (i64.const 0))
    (i32.store8 (i32.const 72) (i32.const 0))
    (i32.store (i32.const 80) (i32.const 1))
    (i64.store (i32.const 88) (local.get $ns))
    (i64.store (i32.const 96) (i64.const 0))
    (i32.store16 (i32.const 104) (i32.const 0))
    (drop (call $poll_oneoff (i32.const 64) (i32.const 128) (i32.const 1) (i32.const 160))))
  (func (export "_start") {body}))"#
    )
}

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
    module(
        "data.txt",
        "(local $errno i32)
         (local.set $errno (call $path_open (i32.const 3) (i32.const 1) (i32.const 1024) (i32.const 8)
           (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 32)))
         (if (local.get $errno) (then (call $proc_exit (local.get $errno))))
         (i32.store (i32.const 40) (i32.const 4096))
         (i32.store (i32.const 44) (i32.const 4096))
         (local.set $errno (call $fd_read (i32.load (i32.const 32)) (i32.const 40) (i32.const 1) (i32.const 48)))
         (if (local.get $errno) (then (call $proc_exit (local.get $errno))))
         (call $print (i32.const 1) (i32.const 4096) (i32.load (i32.const 48)))",
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
