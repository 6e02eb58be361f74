/**
 * The pinned "NVIDIA Device Identity CA": the only trust anchor for GPU device (AK) certificate chains,
 * Hopper and Blackwell alike (the AK chains of nvtrust and attestation-sdk samples). Byte-identical to nvtrust
 * verifier/certs/verifier_device_root.pem (test/vectors/nvidia/nvtrust/roots/). The root that a device
 * sends at the end of its chain is never trusted (nvtrust nvml/gpu_cert_chains.py drops it too). The SHA-256 fingerprint is asserted at
 * first use, so a corrupted embed fails loudly instead of trusting something else.
 */
import { lazyPinnedRoot } from './pinned.js';

export const NVIDIA_DEVICE_ROOT_SHA256 = '102bf659d5419614c9d8e6aecebc80454eb26b1df6a769ac720b9a690b167b48';

export const NVIDIA_DEVICE_ROOT_PEM = `-----BEGIN CERTIFICATE-----
MIICCzCCAZCgAwIBAgIQLTZwscoQBBHB/sDoKgZbVDAKBggqhkjOPQQDAzA1MSIw
IAYDVQQDDBlOVklESUEgRGV2aWNlIElkZW50aXR5IENBMQ8wDQYDVQQKDAZOVklE
SUEwIBcNMjExMTA1MDAwMDAwWhgPOTk5OTEyMzEyMzU5NTlaMDUxIjAgBgNVBAMM
GU5WSURJQSBEZXZpY2UgSWRlbnRpdHkgQ0ExDzANBgNVBAoMBk5WSURJQTB2MBAG
ByqGSM49AgEGBSuBBAAiA2IABA5MFKM7+KViZljbQSlgfky/RRnEQScW9NDZF8SX
gAW96r6u/Ve8ZggtcYpPi2BS4VFu6KfEIrhN6FcHG7WP05W+oM+hxj7nyA1r1jkB
2Ry70YfThX3Ba1zOryOP+MJ9vaNjMGEwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8B
Af8EBAMCAQYwHQYDVR0OBBYEFFeF/4PyY8xlfWi3Olv0jUrL+0lfMB8GA1UdIwQY
MBaAFFeF/4PyY8xlfWi3Olv0jUrL+0lfMAoGCCqGSM49BAMDA2kAMGYCMQCPeFM3
TASsKQVaT+8S0sO9u97PVGCpE9d/I42IT7k3UUOLSR/qvJynVOD1vQKVXf0CMQC+
EY55WYoDBvs2wPAH1Gw4LbcwUN8QCff8bFmV4ZxjCRr4WXTLFHBKjbfneGSBWwA=
-----END CERTIFICATE-----
`;

/** The pinned root, parsed once; throws CvmError ERR_PINNED_ROOT if the embedded bytes were altered. */
export const nvidiaDeviceRoot = lazyPinnedRoot('NVIDIA Device Identity root', NVIDIA_DEVICE_ROOT_PEM, NVIDIA_DEVICE_ROOT_SHA256);
