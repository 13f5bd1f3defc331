;; hello: prints a greeting on stdout through WASI and exits 0.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; iovec at 0: pointer 16, length 22; the text at 16
  (data (i32.const 0) "\10\00\00\00\16\00\00\00")
  (data (i32.const 16) "hello from rkube wasm\0a")
  (func (export "_start")
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
