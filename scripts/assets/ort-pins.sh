# Sourced: the pinned ONNX Runtime wheels (PyPI onnxruntime==1.31.1) per machine.
# ort_pins ARCH (uname -m or Debian spelling) sets ORT_VERSION ORT_PLATFORM
# ORT_WHEEL ORT_WHEEL_SHA (the wheel) and ORT_LIB_SHA (the library inside it);
# it returns 1 for an architecture without a pin.
ort_pins() {
  ORT_VERSION=1.31.1
  case "$1" in
    x86_64 | amd64)
      ORT_PLATFORM=manylinux_2_28_x86_64
      ORT_WHEEL=onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl
      ORT_WHEEL_SHA=5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f
      ORT_LIB_SHA=fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3
      ;;
    aarch64 | arm64)
      ORT_PLATFORM=manylinux_2_28_aarch64
      ORT_WHEEL=onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_aarch64.whl
      ORT_WHEEL_SHA=da05378364c44d4407e463982d2bf8d5e4cfea873283757e48beeb41df97b7f3
      ORT_LIB_SHA=8aa3b76b28c778a2b1dd660d34161adb1d508c9ccd04ff9dc80e26eca5df8467
      ;;
    *) return 1 ;;
  esac
}
