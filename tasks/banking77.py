"""banking77: 77-way intent classification of online-banking customer messages."""

from harness.tasks import Fixtures, HubSource, Task, stable_id
from harness.types import Sample

LABELS = (
    "card_arrival",
    "card_linking",
    "exchange_rate",
    "card_payment_wrong_exchange_rate",
    "extra_charge_on_statement",
    "pending_cash_withdrawal",
    "fiat_currency_support",
    "card_delivery_estimate",
    "automatic_top_up",
    "card_not_working",
    "exchange_via_app",
    "lost_or_stolen_card",
    "age_limit",
    "pin_blocked",
    "contactless_not_working",
    "top_up_by_bank_transfer_charge",
    "pending_top_up",
    "cancel_transfer",
    "top_up_limits",
    "wrong_amount_of_cash_received",
    "card_payment_fee_charged",
    "transfer_not_received_by_recipient",
    "supported_cards_and_currencies",
    "getting_virtual_card",
    "card_acceptance",
    "top_up_reverted",
    "balance_not_updated_after_cheque_or_cash_deposit",
    "card_payment_not_recognised",
    "edit_personal_details",
    "why_verify_identity",
    "unable_to_verify_identity",
    "get_physical_card",
    "visa_or_mastercard",
    "topping_up_by_card",
    "disposable_card_limits",
    "compromised_card",
    "atm_support",
    "direct_debit_payment_not_recognised",
    "passcode_forgotten",
    "declined_cash_withdrawal",
    "pending_card_payment",
    "lost_or_stolen_phone",
    "request_refund",
    "declined_transfer",
    "Refund_not_showing_up",
    "declined_card_payment",
    "pending_transfer",
    "terminate_account",
    "card_swallowed",
    "transaction_charged_twice",
    "verify_source_of_funds",
    "transfer_timing",
    "reverted_card_payment?",
    "change_pin",
    "beneficiary_not_allowed",
    "transfer_fee_charged",
    "receiving_money",
    "failed_transfer",
    "transfer_into_account",
    "verify_top_up",
    "getting_spare_card",
    "top_up_by_cash_or_cheque",
    "order_physical_card",
    "virtual_card_not_working",
    "wrong_exchange_rate_for_cash_withdrawal",
    "get_disposable_virtual_card",
    "top_up_failed",
    "balance_not_updated_after_bank_transfer",
    "cash_withdrawal_not_recognised",
    "exchange_charge",
    "top_up_by_card_charge",
    "activate_my_card",
    "cash_withdrawal_charge",
    "card_about_to_expire",
    "apple_pay_or_google_pay",
    "verify_my_identity",
    "country_support",
)

# PolyAI/banking77 stores labels as integers; its ClassLabel names are the intents in
# case-insensitive alphabetical order (read from the dataset card, not tried here: no hub access).
_HUB_NAMES = tuple(sorted(LABELS, key=str.lower))


def to_sample(row: dict) -> Sample:
    return Sample(id=str(row["id"]), fields={"text": row["text"]}, target=str(row["label"]))


def _from_hub(row: dict) -> dict:
    return {"id": stable_id("hub", row["text"]), "text": row["text"], "label": _HUB_NAMES[row["label"]]}


TASK = Task(
    name="banking77",
    version=1,
    domain="customer support",
    kind="classification",
    description="Intent of a banking customer's message (77 intents).",
    to_sample=to_sample,
    test_split="test",
    train_split="train",
    metrics=("accuracy", "macro_f1"),
    labels=LABELS,
    hub=HubSource("PolyAI/banking77", None, {"train": "train", "test": "test"}, _from_hub),
    max_tokens=24,  # the longest intent names run to ~15 tokens
    required_fields=("id", "text", "label"),
    input_field="text",
    adapter_template="short",
    # hand-written rows for `harness check-task` and the test suite (never copied from the data)
    fixtures=Fixtures(
        rows={
            "train": [
                {"id": "b-tr-1", "text": "Where is the card you posted to me last month?", "label": "card_arrival"},
                {"id": "b-tr-2", "text": "My plastic card still has not turned up in the mail.", "label": "card_arrival"},
                {"id": "b-tr-3", "text": "Forgot the code for the app, how do I reset it?", "label": "passcode_forgotten"},
                {"id": "b-tr-4", "text": "I can not remember my passcode for logging in.", "label": "passcode_forgotten"},
                {"id": "b-tr-5", "text": "The machine kept my card after I typed the PIN.", "label": "card_swallowed"},
                {"id": "b-tr-6", "text": "An ATM swallowed my debit card this morning.", "label": "card_swallowed"},
            ],
            "test": [
                {"id": "b-te-1", "text": "Has my new card been sent out yet?", "label": "card_arrival"},
                {"id": "b-te-2", "text": "Which button resets a forgotten passcode?", "label": "passcode_forgotten"},
            ],
        },
        wrong="card_swallowed",
    ),
)
