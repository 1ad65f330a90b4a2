// A handler that receives its caller's W3C trace context, as a service passes it to a C
// library: `handle` takes a traceparent string, `handle_ids` the binary ids. Each calls
// `lookup`, a probed callee that carries no context of its own.
//
// context TRACEPARENT... : handle(each argument, i), then handle_ids with fixed ids.
#include <stdint.h>
#include <stdio.h>

__attribute__((noinline)) int lookup(int n) {
    __asm__ volatile("" ::: "memory");
    return n * 2;
}

__attribute__((noinline)) int handle(const char *traceparent, int n) {
    __asm__ volatile("" ::: "memory");
    return lookup(n) + (traceparent[0] != 0);
}

__attribute__((noinline)) int handle_ids(const uint8_t *trace_id, const uint8_t *span_id, int n) {
    __asm__ volatile("" ::: "memory");
    return lookup(n) + trace_id[0] + span_id[0];
}

int main(int argc, char **argv) {
    int total = 0;
    for (int i = 1; i < argc; i++) {
        total += handle(argv[i], i);
    }
    uint8_t trace_id[16], span_id[8];
    for (int i = 0; i < 16; i++) {
        trace_id[i] = (uint8_t)(0x10 + i);
    }
    for (int i = 0; i < 8; i++) {
        span_id[i] = (uint8_t)(0xa0 + i);
    }
    total += handle_ids(trace_id, span_id, 100);
    printf("context %d\n", total);
    return 0;
}
