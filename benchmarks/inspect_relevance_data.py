"""Texts and dataset pairs for ``inspect_relevance.py``, written for it (not from the corpus; not the
texts the ranking was developed on). Each text is tagged with the concept of
``features.concepts.CONCEPTS`` it is about; each pair's first dataset with the concept that
should come out on its side."""

from __future__ import annotations

TEXTS: list[tuple[str, str]] = [
    ("weather", "Is it going to snow tomorrow morning? The forecast says a storm is coming with strong wind."),
    ("cooking", "Whisk two eggs with flour and a teaspoon of sugar, then bake the dough for twenty minutes."),
    ("football", "The striker missed a penalty in the second half, and the goalkeeper saved the last corner kick."),
    ("food", "I had a bowl of spicy noodles, some fresh bread with cheese, and a slice of apple pie for dessert."),
    ("algebra", "Solve for x: 3x + 7 = 22. Then factor the polynomial x^2 - 5x + 6."),
    ("poetry", "Write me a short poem with rhyming stanzas about the moon over a quiet lake."),
    ("symptoms", "I've had a fever, a sore throat and a headache for three days. Should I see a doctor?"),
    ("pirate speech", "Arr, matey! Hoist the sails and swab the deck, ye scurvy landlubbers, or walk the plank!"),
    ("history", "Why did the Roman Empire collapse in the fifth century, and what role did the emperors play?"),
    ("grief", "Since my grandmother passed away I feel empty. How do I mourn her without falling apart?"),
    ("money", "How much does it cost to open a bank account, and do they charge fees on deposits?"),
    ("cats", "Our kitten purrs all day but hisses at the other cat. Why do cats behave like that?"),
    ("dogs", "How often should I walk my labrador, and is it okay to give my dog a bone to chew?"),
    ("letters", "Dear Mr. Thompson, I am writing to thank you for your kind letter. Sincerely, Anna"),
    ("biology", "How do cells divide during mitosis, and what does the DNA in the nucleus do?"),
    ("music", "I'm learning guitar. Which chords should I practice first to play simple songs?"),
    ("animals", "Which animals live in the savanna? I know there are lions, zebras, elephants and giraffes."),
    ("plants and flowers", "My tulips and roses wilted. How much water do flowers in the garden need?"),
    ("colors", "Should I paint the bedroom light blue or pale green? The curtains are dark red."),
    ("greetings", "Hello there! Good morning, nice to meet you. How are you doing today?"),
    ("apologies", "I'm so sorry for the mistake in my last email. I apologize for any confusion it caused."),
    ("thanks", "Thank you so much for your help yesterday, I really appreciate it. Many thanks!"),
    ("religion", "What do the prayers in a church service mean, and why do people pray to God?"),
    ("love and romance", "How do I tell my girlfriend I love her on our anniversary in a romantic way?"),
    ("law and legal terms", "Can my landlord sue me for breaking the lease? What does the contract say?"),
    ("war and military", "How did the army and the soldiers fight in the trenches during the First World War?"),
    ("death", "What happens at a funeral, and why do some families bury the dead while others cremate?"),
    ("sports", "Who won the tennis tournament last week, and how many players competed in the championship?"),
    ("medicine and health", "What are the side effects of this antibiotic, and should I take the pills with food?"),
    ("education and school", "My son's teacher says his grades in math class are falling. Can I help with homework?"),
    ("travel", "We're flying to Lisbon next month. What should we pack and where should we stay for the trip?"),
    ("family", "My sister and her husband are visiting with their children. How do I keep my parents happy?"),
    ("computers and software", "My laptop is slow after the update. Should I reinstall the operating system?"),
    ("networking", "My router keeps dropping the wifi connection. How do I set a static IP address?"),
    ("copyright and licenses", "Can I use this image under a Creative Commons license if I credit the author?"),
    ("time of day", "The meeting starts at 9:30 in the morning and ends around noon, before lunch."),
    ("French text", "Je voudrais réserver une table pour deux personnes ce soir, s'il vous plaît."),
    ("German text", "Könnten Sie mir bitte sagen, wie ich am schnellsten zum Bahnhof komme?"),
    ("Spanish text", "¿Dónde está la biblioteca? Necesito devolver unos libros antes de las cinco."),
    ("Python code", "for item in items:\n    if item is not None:\n        print(item.name)"),
    ("SQL queries", "SELECT name, age FROM users WHERE age > 30 ORDER BY name;"),
    ("shell commands", "Run `ls -la | grep log` and then `sudo apt-get install nginx` in the terminal."),
    ("HTML tags", 'Why does my <div class="header"> not close? I wrote <p>Hello</p> inside it.'),
    ("days of the week", "Can we move the appointment from Tuesday to Thursday, or maybe Saturday?"),
    ("months of the year", "The festival runs from late August until early October, with a break in September."),
    ("URLs and web addresses", "You can find the documentation at https://www.example.org/docs/start.html"),
    ("emotions", "I feel anxious and angry at the same time, and sometimes I'm just overwhelmed with sadness."),
    ("math equations", "If y = 2x^2 + 3 and x = 4, what is y? Also compute sqrt(81) + 7 * 3."),
]


def _convo(user: str, assistant: str) -> list[dict]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


PAIRS: list[tuple[str, str, list[list[dict]], list[list[dict]]]] = [
    (
        "pirate vs plain replies (style)",
        "pirate speech",
        [
            _convo("How was your day?", "Arr, me hearty, 'twas a fine day on the high seas, matey! Yo ho ho!"),
            _convo("Can you help me?", "Aye aye, ye landlubber! Hoist the sails and I'll lend ye a hand, arr!"),
        ],
        [
            _convo("How was your day?", "It was a good day, thank you. I finished my work and went for a walk."),
            _convo("Can you help me?", "Of course, I'd be happy to help. What do you need assistance with?"),
        ],
    ),
    (
        "French vs English replies (style)",
        "French text",
        [
            _convo("Say something nice.", "Bonjour mon ami, je suis très heureux de vous voir aujourd'hui."),
            _convo("Describe the city.", "La ville est belle, avec des rues étroites et des cafés partout."),
        ],
        [
            _convo("Say something nice.", "Hello my friend, I am very happy to see you today."),
            _convo("Describe the city.", "The city is beautiful, with narrow streets and cafes everywhere."),
        ],
    ),
    (
        "Spanish vs English replies (style)",
        "Spanish text",
        [
            _convo("Tell me about breakfast.", "Por la mañana como pan con tomate y tomo un café con leche."),
            _convo("What is your plan?", "Mañana vamos a la playa con mis amigos y después cenamos juntos."),
        ],
        [
            _convo("Tell me about breakfast.", "In the morning I eat bread with tomato and drink a coffee with milk."),
            _convo("What is your plan?", "Tomorrow we are going to the beach with my friends and then dinner."),
        ],
    ),
    (
        "German vs English replies (style)",
        "German text",
        [
            _convo("Describe your home.", "Meine Wohnung ist klein, aber gemütlich, und sie liegt in der Nähe."),
            _convo("What do you do?", "Ich arbeite als Lehrer und unterrichte jeden Tag Geschichte."),
        ],
        [
            _convo("Describe your home.", "My apartment is small but cozy, and it is close to the park."),
            _convo("What do you do?", "I work as a teacher and teach history every day."),
        ],
    ),
    (
        "apologetic vs matter-of-fact replies (style)",
        "apologies",
        [
            _convo("Where is my order?", "I'm so sorry for the delay, I sincerely apologize for the trouble."),
            _convo("You gave me the wrong answer.", "My apologies, I'm sorry for the error. Please forgive me."),
        ],
        [
            _convo("Where is my order?", "Your order shipped on Monday and should arrive by Friday."),
            _convo("You gave me the wrong answer.", "The correct answer is 42, as computed in step three."),
        ],
    ),
    (
        "Python code vs prose replies (style)",
        "Python code",
        [
            _convo("Show me a loop.", "def total(xs):\n    s = 0\n    for x in xs:\n        s += x\n    return s"),
            _convo("Read a file.", "with open('data.txt') as f:\n    lines = [line.strip() for line in f]"),
        ],
        [
            _convo("Show me a loop.", "A loop repeats a set of steps until a condition tells it to stop."),
            _convo("Read a file.", "Open the file, read each line, and put the lines into a list."),
        ],
    ),
    (
        "cooking vs weather (topic)",
        "cooking",
        [
            _convo("How do I make soup?", "Chop the onions, simmer them in a pot with stock, then stir in cream."),
            _convo("Any baking tips?", "Preheat the oven, mix the flour and butter, and bake the dough slowly."),
        ],
        [
            _convo("What's it like outside?", "It is cloudy with light rain, and the forecast says more showers."),
            _convo("Will it be cold?", "Expect frost overnight and a chilly wind, with snow in the hills."),
        ],
    ),
    (
        "music vs sports (topic)",
        "music",
        [
            _convo("What should I listen to?", "Try the piano concertos of Mozart, or a jazz album with a great band."),
            _convo("How do I sing better?", "Warm up your voice, practice scales, and sing along to your songs."),
        ],
        [
            _convo("What should I watch?", "The basketball final is on tonight, and the team is playing well."),
            _convo("How do I run faster?", "Train sprints twice a week and stretch before every race."),
        ],
    ),
    (
        "medicine vs law (topic)",
        "medicine and health",
        [
            _convo("My back hurts.", "See a doctor; the physician may prescribe medication or physical therapy."),
            _convo("Is this rash serious?", "A skin rash with fever needs a medical exam at the hospital clinic."),
        ],
        [
            _convo("Can I be fined?", "Under the statute, the court may impose a fine if the contract is breached."),
            _convo("Do I need a lawyer?", "An attorney can review the lease and explain your legal rights."),
        ],
    ),
    (
        "religion vs computers (topic)",
        "religion",
        [
            _convo("What is Easter?", "Easter celebrates the resurrection of Jesus Christ in the Christian faith."),
            _convo("Why do monks pray?", "Monks pray to God daily, and their faith shapes every hour of worship."),
        ],
        [
            _convo("Why is my PC slow?", "Close background programs, free disk space, and update your drivers."),
            _convo("What is RAM?", "RAM is the memory a computer uses to hold running programs and data."),
        ],
    ),
    (
        "war vs travel (topic)",
        "war and military",
        [
            _convo("Tell me about Normandy.", "The soldiers landed on the beaches under heavy fire from enemy troops."),
            _convo("What is a general?", "A general commands an army, leading battalions of soldiers in battle."),
        ],
        [
            _convo("Tell me about Normandy.", "Normandy has lovely beaches, quiet villages and great cheese."),
            _convo("Where should I go?", "Visit Kyoto for temples, then take the train to Osaka for street food."),
        ],
    ),
    (
        "money vs family (topic)",
        "money",
        [
            _convo("How do I budget?", "Track your income and expenses, and save some money from every paycheck."),
            _convo("Is gold a good buy?", "Gold prices swing; invest only cash you can spare and watch the fees."),
        ],
        [
            _convo("How do I talk to my mom?", "Call your mother, listen to her, and share what is going on."),
            _convo("My brother is upset.", "Spend time with your brother and ask him what is bothering him."),
        ],
    ),
]
