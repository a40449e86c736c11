#!/usr/bin/env python3
"""An independent ESME, python-smpplib, against smsc-sim.

Usage: smpplib_client.py PORT

Binds as a transceiver (system_id "esme", password "pw"), sends a long text split by
smpplib.gsm.make_parts with a receipt requested for every part, and waits for one receipt
per part. Prints what it got as JSON on stdout; exits 0 only when every part was accepted
and every part's receipt arrived with stat DELIVRD.
"""

import json
import sys
import time

import smpplib.client
import smpplib.consts
import smpplib.gsm

SOURCE = "447700900001"
DESTINATION = "447700900555"
TEXT = (
    "This long message comes from python-smpplib, an SMPP client that shares no code "
    "with smppd. It is split into parts with a concatenation header, each part asks for a "
    "delivery receipt, and the simulator must show the whole text on the handset. "
) * 2


def text(value):
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return "" if value is None else str(value)


def main():
    port = int(sys.argv[1])
    client = smpplib.client.Client("127.0.0.1", port, timeout=1, allow_unknown_opt_params=True)
    accepted = []
    receipts = []

    def on_sent(pdu, **_):
        accepted.append(text(pdu.message_id))

    def on_received(pdu, **_):
        receipts.append(
            {
                "receipted_message_id": text(getattr(pdu, "receipted_message_id", None)),
                "message_state": getattr(pdu, "message_state", None),
                "esm_class": pdu.esm_class,
                "text": text(pdu.short_message),
            }
        )
        return smpplib.consts.SMPP_ESME_ROK

    client.set_message_sent_handler(on_sent)
    client.set_message_received_handler(on_received)
    client.connect()
    client.bind_transceiver(system_id="esme", password="pw")

    parts, data_coding, esm_class = smpplib.gsm.make_parts(TEXT)
    for part in parts:
        client.send_message(
            source_addr_ton=smpplib.consts.SMPP_TON_INTL,
            source_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
            source_addr=SOURCE,
            dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
            dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
            destination_addr=DESTINATION,
            short_message=part,
            data_coding=data_coding,
            esm_class=esm_class,
            registered_delivery=True,
        )

    deadline = time.time() + 20
    while (len(accepted) < len(parts) or len(receipts) < len(parts)) and time.time() < deadline:
        client.read_once()

    client.unbind()
    client.disconnect()

    receipted = sorted(r["receipted_message_id"] for r in receipts)
    ok = (
        len(parts) > 1
        and len(accepted) == len(parts)
        and receipted == sorted(accepted)
        and all(r["esm_class"] & 0x04 and "stat:DELIVRD" in r["text"] for r in receipts)
    )
    print(
        json.dumps(
            {
                "ok": ok,
                "parts": len(parts),
                "accepted": accepted,
                "receipts": receipts,
                "destination": DESTINATION,
                "text": TEXT,
            }
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
