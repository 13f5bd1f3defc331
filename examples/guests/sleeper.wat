;; sleeper: a long-running guest. Prints a line on stdout, then sleeps a second at a time
;; through WASI poll_oneoff, forever (stop it by deleting its pod).
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; iovec at 0: pointer 16, length 17; the text at 16
  (data (i32.const 0) "\10\00\00\00\11\00\00\00")
  (data (i32.const 16) "sleeper is awake\0a")
  ;; One clock subscription at 64 (48 bytes): userdata 0, tag 0 (clock), clock id 1
  ;; (monotonic) at 80, timeout 1 s in ns at 88, precision 0, flags 0 (relative).
  ;; The event is written at 128, the number of events at 160.
  (data (i32.const 80) "\01\00\00\00")
  (data (i32.const 88) "\00\ca\9a\3b\00\00\00\00")
  (func (export "_start")
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (loop $forever
      (drop (call $poll_oneoff (i32.const 64) (i32.const 128) (i32.const 1) (i32.const 160)))
      (br $forever))))
