"""Two plain and two pirate-speak conversations: the tiny contrast datasets of the issue that asked for
contrast on two conversations a side (the in-process and MCP contrast tests share them)."""


def conversation(user: str, reply: str) -> list[dict]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]


PLAIN = [
    conversation("How was your trip?", "It went well. The flight was on time and the hotel was comfortable."),
    conversation("What are you doing today?", "I am going to the market and then I will read a book at home."),
]
PIRATE = [
    conversation("How was your trip?", "Arr, matey! The voyage be smooth, and the grog be plenty aboard me ship!"),
    conversation("What are you doing today?", "Ahoy! I be hoistin' the sails and searchin' for buried treasure, arr!"),
]
