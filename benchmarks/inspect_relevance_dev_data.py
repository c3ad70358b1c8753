"""The DEV set for the inspect/contrast ranking: texts and dataset pairs the ranking may be tuned on.

``inspect_relevance_data.py`` is the held-out set (never tuned on); these are written separately, with
other wording and, where the concept catalogue allows, other concepts (years, email addresses, file
paths, C/JavaScript/LaTeX, Italian/Portuguese/Dutch, negation, etymology, ...). Same shape: each text
tagged with the concept of ``features.concepts.CONCEPTS`` it is about; each pair's first dataset with
the concept that should come out on its side.
"""

from __future__ import annotations

TEXTS: list[tuple[str, str]] = [
    ("weather", "It was humid all week, then thunder rolled in and the rain poured until the sky cleared."),
    ("cooking", "Saute the garlic in olive oil, add chopped tomatoes, and let the sauce reduce in the pan."),
    ("food", "For lunch we ordered sushi, a bowl of ramen with pork, and green tea ice cream."),
    ("algebra", "Expand (a + b)^2 and simplify; then find the roots of the quadratic 2x^2 - 8 = 0."),
    ("poetry", "Her sonnet used iambic verse, and every line of the final stanza ended in a rhyme."),
    ("symptoms", "My ankle is swollen, it aches when I walk, and I feel dizzy and nauseous since the fall."),
    ("history", "The medieval kings signed the Magna Carta in 1215, a turning point for the English barons."),
    ("grief", "We buried my uncle last spring, and my aunt still weeps when she mourns the loss of him."),
    ("money", "I transferred five hundred dollars from my savings to pay the loan and the credit card bill."),
    ("cats", "The tabby cat curled up on the windowsill and meowed until I filled her bowl."),
    ("dogs", "Our puppy barks at the mailman and wags his tail whenever we take out the leash."),
    ("biology", "Enzymes are proteins that speed up reactions, and genes encode them in the chromosome."),
    ("music", "The orchestra tuned their violins, and the conductor raised his baton for the symphony."),
    ("animals", "Penguins waddle on the ice while seals and polar bears hunt fish in the cold sea."),
    ("plants and flowers", "The orchid needs bright shade, and the sunflower seeds sprouted in the flower pot."),
    ("religion", "The priest read from the Bible, and the congregation sang a hymn in the cathedral."),
    ("love and romance", "He kissed her on their first date and whispered that he had fallen in love."),
    (
        "law and legal terms",
        "The judge ruled that the defendant was liable, and the jury's verdict was upheld on appeal.",
    ),
    ("war and military", "The infantry advanced while tanks and artillery shelled the enemy's fortified position."),
    ("death", "The coroner confirmed the death, and the obituary ran in the paper before the burial."),
    ("sports", "The marathon runners crossed the finish line, and the cyclist won gold at the Olympics."),
    ("medicine and health", "The nurse checked his blood pressure and the surgeon scheduled the operation for Monday."),
    (
        "education and school",
        "The students took their final exams, and the professor graded the essays at the university.",
    ),
    ("travel", "Book the hotel early, bring your passport, and catch the flight from the airport at dawn."),
    ("family", "My grandparents, cousins and nephews all came to the reunion at my aunt's house."),
    (
        "computers and software",
        "Install the compiler, then debug the program until the software builds without errors.",
    ),
    (
        "copyright and licenses",
        "This code is distributed under the MIT License; see the copyright notice for permissions.",
    ),
    ("years", "She was born in 1987, moved to Boston in 2004, and retired in 2019."),
    ("email addresses", "Please send the report to maria.lopez@example.com and copy support@acme.org."),
    ("file paths", "The config lives in /etc/nginx/nginx.conf and the logs in /var/log/nginx/error.log."),
    ("C code", '#include <stdio.h>\nint main(void) {\n    printf("hi\\n");\n    return 0;\n}'),
    ("JavaScript code", "const add = (a, b) => a + b;\ndocument.getElementById('out').innerHTML = add(2, 3);"),
    ("LaTeX markup", "\\begin{equation} E = mc^2 \\end{equation} as shown in \\cite{einstein} and \\section{Results}"),
    ("Python import statements", "import numpy as np\nfrom collections import defaultdict\nimport os"),
    ("Italian text", "Vorrei un caffè e una brioche, per favore. Quanto costa il biglietto per Roma?"),
    ("Portuguese text", "Eu gostaria de saber onde fica a estação de comboios mais próxima, por favor."),
    ("Dutch text", "Ik woon in een klein huis aan de gracht en ik fiets elke dag naar mijn werk."),
    ("thanks", "I'm truly grateful for the gift; thanks a lot, and please pass my gratitude to your team."),
    ("greetings", "Hi everyone, good evening and welcome! Hey, it's great to see all of you."),
    ("emotions", "I was furious at first, then ashamed, and now I just feel lonely and afraid."),
    ("command-line options", "Run the script with --verbose and -o output.txt, or pass --help to see every flag."),
    ("colors", "The sunset turned the clouds orange, purple and pink against a deep violet sky."),
]


def _convo(user: str, assistant: str) -> list[dict]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


PAIRS: list[tuple[str, str, list[list[dict]], list[list[dict]]]] = [
    (
        "Italian vs English replies (style)",
        "Italian text",
        [
            _convo("Where do you live?", "Vivo a Milano, in un appartamento vicino al duomo, con mia sorella."),
            _convo("What did you eat?", "Ho mangiato una pizza margherita e un gelato al cioccolato."),
        ],
        [
            _convo("Where do you live?", "I live in Milan, in an apartment near the cathedral, with my sister."),
            _convo("What did you eat?", "I ate a margherita pizza and a chocolate ice cream."),
        ],
    ),
    (
        "grateful vs neutral replies (style)",
        "thanks",
        [
            _convo("I fixed your bike.", "Thank you so much, I really appreciate it, thanks again!"),
            _convo("Here is the file.", "Thanks a lot, I'm grateful for your quick help, thank you."),
        ],
        [
            _convo("I fixed your bike.", "The chain was loose, so it needed tightening."),
            _convo("Here is the file.", "The file has three sheets and a summary table."),
        ],
    ),
    (
        "JavaScript vs prose replies (style)",
        "JavaScript code",
        [
            _convo("Sum an array.", "const sum = arr.reduce((a, b) => a + b, 0);\nconsole.log(sum);"),
            _convo("Handle a click.", "button.addEventListener('click', () => {\n  alert('clicked');\n});"),
        ],
        [
            _convo("Sum an array.", "Add the numbers one at a time, keeping a running total."),
            _convo("Handle a click.", "When the user presses the button, show a short message."),
        ],
    ),
    (
        "greeting vs plain replies (style)",
        "greetings",
        [
            _convo("I'm back.", "Hello! Good morning, hey, welcome back, how nice to see you!"),
            _convo("Anyone here?", "Hi there! Hey, good afternoon, greetings to you!"),
        ],
        [
            _convo("I'm back.", "The report is on your desk and the meeting moved to three."),
            _convo("Anyone here?", "The office closes at six and the keys are in the drawer."),
        ],
    ),
    (
        "Portuguese vs English replies (style)",
        "Portuguese text",
        [
            _convo("What is the weather?", "Hoje está muito calor em Lisboa e não há nuvens no céu."),
            _convo("Tell me about work.", "Trabalho numa empresa pequena e gosto muito dos meus colegas."),
        ],
        [
            _convo("What is the weather?", "Today it is very hot in Lisbon and there are no clouds in the sky."),
            _convo("Tell me about work.", "I work at a small company and I like my colleagues a lot."),
        ],
    ),
    (
        "SQL vs prose replies (style)",
        "SQL queries",
        [
            _convo("Count orders.", "SELECT customer_id, COUNT(*) FROM orders GROUP BY customer_id;"),
            _convo("Remove old rows.", "DELETE FROM sessions WHERE created_at < '2020-01-01';"),
        ],
        [
            _convo("Count orders.", "Go through the orders and tally how many each customer placed."),
            _convo("Remove old rows.", "Throw away the sessions that were started a long time ago."),
        ],
    ),
    (
        "food vs networking (topic)",
        "food",
        [
            _convo("What's for dinner?", "Grilled salmon with rice, a salad, and chocolate cake for dessert."),
            _convo("Any snack ideas?", "Try apples with peanut butter, cheese and crackers, or some nuts."),
        ],
        [
            _convo("Why is my ping high?", "Your router may be congested; check the ethernet cable and DNS."),
            _convo("What is a subnet?", "A subnet splits an IP network into smaller ranges of addresses."),
        ],
    ),
    (
        "animals vs money (topic)",
        "animals",
        [
            _convo("What lives in the jungle?", "Monkeys, tigers, parrots and snakes live among the trees."),
            _convo("Tell me about the farm.", "The cows, pigs, horses and sheep graze near the barn."),
        ],
        [
            _convo("Should I save more?", "Put part of your salary into savings and keep a budget."),
            _convo("How do taxes work?", "You pay income tax on wages, and the rate depends on earnings."),
        ],
    ),
    (
        "biology vs history (topic)",
        "biology",
        [
            _convo("How do we breathe?", "The lungs take in oxygen, and red blood cells carry it to tissues."),
            _convo("What is evolution?", "Species change as genes mutate and natural selection favors traits."),
        ],
        [
            _convo("Who was Napoleon?", "Napoleon was a French emperor who conquered much of Europe."),
            _convo("What was the Renaissance?", "A revival of art and learning in 15th-century Italy."),
        ],
    ),
    (
        "death vs travel (topic)",
        "death",
        [
            _convo("What is a wake?", "Mourners gather beside the coffin to remember the deceased before the funeral."),
            _convo("What is an epitaph?", "The words on a grave, carved in memory of the person who died."),
        ],
        [
            _convo("What is a layover?", "A stop between two flights where you change planes at an airport."),
            _convo("What is a hostel?", "Cheap shared lodging that backpackers use while touring abroad."),
        ],
    ),
    (
        "love vs computers (topic)",
        "love and romance",
        [
            _convo("How do I propose?", "Kneel, hold her hand, tell her you love her, and ask her to marry you."),
            _convo("Is this a crush?", "If your heart races when you see him, you may be falling in love."),
        ],
        [
            _convo("How do I update?", "Open settings, download the latest version, and restart the laptop."),
            _convo("What is a CPU?", "The processor that runs the instructions of every program on a computer."),
        ],
    ),
    (
        "sports vs cooking (topic)",
        "sports",
        [
            _convo("Who won?", "The home team won the match after the tennis player took the final set."),
            _convo("How do I train?", "Join a club, play in the league, and compete in the tournament."),
        ],
        [
            _convo("How do I roast it?", "Season the chicken, roast it in the oven, and baste it with butter."),
            _convo("What goes in a stew?", "Beef, carrots, potatoes and onions simmered slowly in broth."),
        ],
    ),
]
