{
  # Each ISA's kernels are a static library with its own target flags; the
  # rest is portable. No flags that tune for the build machine: prebuilds
  # must run on any x86-64.
  "variables": {
    "rabitq_common_cflags": ["-O3", "-g", "-ffp-contract=off", "-fvisibility=hidden", "-std=c++17"],
    # An error thrown while an environment (a worker_threads Worker) is being
    # torn down is dropped instead of aborting the process.
    "rabitq_addon_defines": ["NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"]
  },
  "targets": [
    {
      "target_name": "rabitq_kernels_avx2",
      "type": "static_library",
      "sources": ["native/core/kernels/kernels_avx2.cc"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["<@(rabitq_common_cflags)", "-fPIC"],
      "conditions": [
        ["target_arch=='x64'", { "cflags_cc": ["-mavx2", "-mfma", "-mpopcnt", "-mf16c"] }],
        ["OS=='mac' and target_arch=='x64'", { "xcode_settings": {
          "OTHER_CPLUSPLUSFLAGS": ["-O3", "-g", "-ffp-contract=off", "-std=c++17", "-mavx2", "-mfma", "-mpopcnt", "-mf16c"] } }]
      ]
    },
    {
      "target_name": "rabitq_kernels_avx512",
      "type": "static_library",
      "sources": ["native/core/kernels/kernels_avx512.cc"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["<@(rabitq_common_cflags)", "-fPIC"],
      "conditions": [
        ["target_arch=='x64'", { "cflags_cc": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx2", "-mfma", "-mpopcnt", "-mf16c", "-Wno-uninitialized", "-Wno-maybe-uninitialized"] }],
        ["OS=='mac' and target_arch=='x64'", { "xcode_settings": {
          "OTHER_CPLUSPLUSFLAGS": ["-O3", "-g", "-ffp-contract=off", "-std=c++17", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx2", "-mfma", "-mpopcnt", "-mf16c"] } }]
      ]
    },
    {
      # AArch64 NEON: baseline on arm64, so no ISA flags (dotprod is a
      # per-function attribute, used after a HWCAP check). On other
      # architectures the file compiles to a stub. -ffp-contract=off matters
      # here too (Apple clang fuses by default): quantize and the estimates
      # must stay bit-identical to the scalar reference.
      "target_name": "rabitq_kernels_neon",
      "type": "static_library",
      "sources": ["native/core/kernels/kernels_neon.cc", "native/core/kernels/kernels_neon_ex.cc"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["<@(rabitq_common_cflags)", "-fPIC"],
      "xcode_settings": {
        "OTHER_CPLUSPLUSFLAGS": ["-O3", "-g", "-ffp-contract=off", "-std=c++17"]
      }
    },
    {
      "target_name": "rabitq",
      "sources": [
        "native/core/kernels/kernels_scalar.cc",
        "native/core/kernels/dispatch.cc",
        "native/core/thread_pool.cc",
        "native/core/rotation.cc",
        "native/core/kmeans.cc",
        "native/core/exact_knn.cc",
        "native/core/metric.cc",
        "native/core/validation.cc",
        "native/core/quantizer.cc",
        "native/core/ivf/cluster_store.cc",
        "native/core/ivf/id_map.cc",
        "native/core/ivf/scanner.cc",
        "native/core/ivf/batch_scanner.cc",
        "native/core/quantizer/ex_code.cc",
        "native/core/ivf_index.cc",
        "native/core/ivf_index_io.cc",
        "native/core/persist/crc32c.cc",
        "native/core/persist/blob.cc",
        "native/core/persist/writer.cc",
        "native/core/persist/reader.cc",
        "native/binding/addon.cc",
        "native/binding/args.cc",
        "native/binding/batch_worker.cc",
        "native/binding/build_worker.cc",
        "native/binding/errors.cc",
        "native/binding/index_wrap.cc",
        "native/binding/promise_worker.cc"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except",
        "rabitq_kernels_avx2",
        "rabitq_kernels_avx512",
        "rabitq_kernels_neon"
      ],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["<@(rabitq_common_cflags)"],
      "defines": ["<@(rabitq_addon_defines)"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "OTHER_CPLUSPLUSFLAGS": ["-O3", "-g", "-ffp-contract=off", "-std=c++17"]
      }
    },
    {
      # Test-only addon: the kernels one by one (test/kernels*.test.ts,
      # bench/kernels.ts, loaded by bench/native_testing.ts). Its file is
      # build/<config>/rabitq_testing.testnode, not *.node: node-gyp-build
      # and prebuildify take the first *.node in build/<config>, which must
      # stay the library addon (so the library never loads this one and
      # prebuilds never carry it).
      "target_name": "rabitq_testing",
      # (a target_condition: node-gyp's addon.gypi sets 'node' in one)
      "target_conditions": [
        ["_type=='loadable_module'", { "product_extension": "testnode" }]
      ],
      "sources": [
        "native/binding/testing/kernel_hooks.cc",
        "native/binding/args.cc",
        "native/core/kernels/kernels_scalar.cc",
        "native/core/kernels/dispatch.cc"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except",
        "rabitq_kernels_avx2",
        "rabitq_kernels_avx512",
        "rabitq_kernels_neon"
      ],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["<@(rabitq_common_cflags)"],
      "defines": ["<@(rabitq_addon_defines)"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "OTHER_CPLUSPLUSFLAGS": ["-O3", "-g", "-ffp-contract=off", "-std=c++17"]
      }
    }
  ]
}
