//! smsc-sim: an SMPP 3.4 SMSC simulator that plays honest and misbehaving carriers.
//!
//! It depends on `smppd::pdu` and `smppd::sms` only, never on the engine's session or dispatch
//! code, so it can misbehave in ways the engine itself never would.
