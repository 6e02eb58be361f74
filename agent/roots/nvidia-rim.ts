/**
 * The pinned "NVIDIA CoRIM signing Root CA": the only trust anchor for NVIDIA RIM signing chains
 * (nvtrust guest_tools/gpu_verifiers/local_gpu_verifier/src/verifier/certs/). Byte-identical to nvtrust verifier/certs/verifier_RIM_root.pem and
 * attestation-sdk unit-tests/testdata/trusted_certs/rim_root.crt (test/vectors/nvidia/nvtrust/roots/).
 * A root supplied inside a RIM's KeyInfo is never trusted (both nvtrust and attestation-sdk append their pinned root).
 * The SHA-256 of the DER is asserted at first use, so a corrupted embed fails loudly.
 */
import { lazyPinnedRoot } from './pinned.js';

export const NVIDIA_RIM_ROOT_SHA256 = '12977b5115acb0381179279fffeb5a8c4d264971ebb32298023a465fa41df5d1';

export const NVIDIA_RIM_ROOT_PEM = `-----BEGIN CERTIFICATE-----
MIICKTCCAbCgAwIBAgIQRdrjoA5QN73fh1N17LXicDAKBggqhkjOPQQDAzBFMQsw
CQYDVQQGEwJVUzEPMA0GA1UECgwGTlZJRElBMSUwIwYDVQQDDBxOVklESUEgQ29S
SU0gc2lnbmluZyBSb290IENBMCAXDTIzMDMxNjE1MzczNFoYDzIwNTMwMzA4MTUz
NzM0WjBFMQswCQYDVQQGEwJVUzEPMA0GA1UECgwGTlZJRElBMSUwIwYDVQQDDBxO
VklESUEgQ29SSU0gc2lnbmluZyBSb290IENBMHYwEAYHKoZIzj0CAQYFK4EEACID
YgAEuECyi9vNM+Iw2lfUzyBldHAwaC1HF7TCgp12QcEyUTm3Tagxwr48d55+K2VI
lWYIDk7NlAIQdcV/Ff7euGLI+Qauj93HsSI4WX298PpW54RTgz9tC+Q684caR/BX
WEeZo2MwYTAdBgNVHQ4EFgQUpaXrOPK4ZDAk08DBskn594zeZjAwHwYDVR0jBBgw
FoAUpaXrOPK4ZDAk08DBskn594zeZjAwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8B
Af8EBAMCAQYwCgYIKoZIzj0EAwMDZwAwZAIwHGDyscDP6ihHqRvZlI3eqZ4YkvjE
1duaN84tAHRVgxVMvNrp5Tnom3idHYGW/dskAjATvjIx6VzHm/4e2GiZAyZEIUBD
OKPzp5ei/A0iUZpdvngenDwV8Qa/wGdiTmJ7Bp4=
-----END CERTIFICATE-----
`;

/** The pinned root, parsed once; throws CvmError ERR_PINNED_ROOT if the embedded bytes were altered. */
export const nvidiaRimRoot = lazyPinnedRoot('NVIDIA RIM root', NVIDIA_RIM_ROOT_PEM, NVIDIA_RIM_ROOT_SHA256);
