//! The SSTP layer ([MS-SSTP]): wire codec (2.2), HTTPS handshake
//! (3.2.4.1, 3.3.4.1), state machines for both roles (3.2, 3.3) and the
//! crypto binding (3.2.5.2).
