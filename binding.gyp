{
  "targets": [
    {
      "target_name": "cvm_native",
      "sources": [
        "native/src/addon.c",
        "native/src/async.c",
        "native/src/snp.c",
        "native/src/nvml.c",
        "native/src/system.c"
      ],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden"],
      "libraries": ["-ldl", "-lpthread"]
    }
  ]
}
