//! Test guests as WebAssembly text: WASI preview 1 command modules (and one component).

use rkube_harness::wasi_module as module;

/// Prints two lines to stdout and one to stderr, then returns (exit 0).
pub fn hello() -> String {
    module(
        r"hello\nworld\noops\n",
        "(call $print (i32.const 1) (i32.const 1024) (i32.const 12))
         (call $print (i32.const 2) (i32.const 1036) (i32.const 5))",
    )
}

/// Exits with `code` through `proc_exit`.
pub fn exits(code: i32) -> String {
    module("", &format!("(call $proc_exit (i32.const {code}))"))
}

/// Executes `unreachable`.
pub fn traps() -> String {
    module("", "unreachable")
}

/// Spins forever without a single host call.
pub fn busy() -> String {
    module("", "(loop $spin (br $spin))")
}

/// Spins forever, printing a line every 2^18 iterations: its log measures its CPU time.
pub fn busy_ticker() -> String {
    module(
        r"t\n",
        "(local $i i32)
         (loop $spin
           (local.set $i (i32.add (local.get $i) (i32.const 1)))
           (if (i32.eqz (i32.and (local.get $i) (i32.const 0x3ffff)))
             (then (call $print (i32.const 1) (i32.const 1024) (i32.const 2))))
           (br $spin))",
    )
}

/// Grows its memory 1 MiB at a time, forever.
pub fn allocates() -> String {
    module(
        "",
        "(loop $grow
           (drop (memory.grow (i32.const 16)))
           (i32.store (i32.mul (i32.sub (memory.size) (i32.const 1)) (i32.const 65536)) (i32.const 1))
           (br $grow))",
    )
}

/// Sleeps `ms` milliseconds, prints `awake`, exits 0.
pub fn sleeps(ms: u64) -> String {
    module(
        r"awake\n",
        &format!(
            "(call $sleep (i64.const {}))
             (call $print (i32.const 1) (i32.const 1024) (i32.const 6))",
            ms * 1_000_000
        ),
    )
}

/// Prints its NUL-separated argv and environment; with no arguments beyond argv[0] it then
/// sleeps for an hour (a long-running container), else copies stdin to stdout and exits with argc.
pub fn tool() -> String {
    module(
        r"\n",
        "(local $argc i32)
         (local $read i32)
         (drop (call $args_sizes_get (i32.const 16) (i32.const 20)))
         (drop (call $args_get (i32.const 2048) (i32.const 4096)))
         (call $print (i32.const 1) (i32.const 4096) (i32.load (i32.const 20)))
         (call $print (i32.const 1) (i32.const 1024) (i32.const 1))
         (drop (call $environ_sizes_get (i32.const 24) (i32.const 28)))
         (drop (call $environ_get (i32.const 2048) (i32.const 8192)))
         (call $print (i32.const 1) (i32.const 8192) (i32.load (i32.const 28)))
         (call $print (i32.const 1) (i32.const 1024) (i32.const 1))
         (local.set $argc (i32.load (i32.const 16)))
         (if (i32.gt_u (local.get $argc) (i32.const 1))
           (then
             (i32.store (i32.const 40) (i32.const 16384))
             (i32.store (i32.const 44) (i32.const 4096))
             (block $eof
               (loop $copy
                 (br_if $eof (call $fd_read (i32.const 0) (i32.const 40) (i32.const 1) (i32.const 48)))
                 (local.set $read (i32.load (i32.const 48)))
                 (br_if $eof (i32.eqz (local.get $read)))
                 (call $print (i32.const 1) (i32.const 16384) (local.get $read))
                 (br $copy)))
             (call $proc_exit (local.get $argc))))
         (call $sleep (i64.const 3600000000000))",
    )
}

/// Prints the file `data.txt` of its first preopened directory; exits with the errno on failure.
pub fn reads_file() -> String {
    module(
        "data.txt",
        "(local $errno i32)
         ;; path_open(fd 3, follow symlinks, \"data.txt\", no oflags, rights fd_read, -, -, -> @32)
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

/// Creates `out.txt` in its first preopened directory; exits with the errno on failure.
pub fn writes_file() -> String {
    module(
        "out.txt",
        "(local $errno i32)
         ;; oflags creat, rights fd_write (1 << 6)
         (local.set $errno (call $path_open (i32.const 3) (i32.const 1) (i32.const 1024) (i32.const 7)
           (i32.const 1) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 32)))
         (if (local.get $errno) (then (call $proc_exit (local.get $errno))))
         (call $print (i32.load (i32.const 32)) (i32.const 1024) (i32.const 7))",
    )
}

/// A module with no `_start`: a library, not a command.
pub fn reactor() -> String {
    "(module (func (export \"work\")))".into()
}

/// A core module with `count` functions of arithmetic: slow enough to compile to time the cache.
pub fn heavy(count: usize) -> String {
    let mut body = String::new();
    for i in 0..count {
        body.push_str(&format!(
            "(func $f{i} (export \"f{i}\") (param i64) (result i64)
               (local.get 0) (i64.const {i}) (i64.mul) (i64.const 7) (i64.rem_u)
               (local.get 0) (i64.xor) (i64.const 13) (i64.rotl) (local.get 0) (i64.add)
               (i64.const 3) (i64.div_u) (local.get 0) (i64.sub))\n"
        ));
    }
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  {body}
  (func (export "_start") (call $proc_exit (i32.wrap_i64 (call $f1 (i64.const 0))))))"#
    )
}

/// A WASI preview 2 command component whose `run` returns `ok` or `err`.
pub fn component(ok: bool) -> String {
    let result = if ok { 0 } else { 1 };
    format!(
        r#"(component
  (core module $m (func (export "run") (result i32) (i32.const {result})))
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $cli (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $cli)))"#
    )
}
