// draven-fuzz has its own main (Sources/main.swift chooses the target, then runs libFuzzer with
// LLVMFuzzerRunDriver). libFuzzer's archive still wants the classic entry point: it forwards to
// the chosen target's callback.
#include "FuzzDriver.h"

static int (*draven_fuzz_callback)(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return draven_fuzz_callback ? draven_fuzz_callback(data, size) : 0;
}

int draven_fuzz_run(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size)) {
    draven_fuzz_callback = callback;
    return LLVMFuzzerRunDriver(argc, argv, callback);
}
