"""A synthetic English NER corpus in CoNLL format (token TAG per line, IOB2 tags PER/ORG/LOC/MISC,
blank line between sentences), made from sentence templates and gazetteers.

No real NER corpus is reachable from this machine (see ../shared/ASSETS.md), so this one is
generated: 40 templates of news-like sentences, filled with names of people, organisations,
places and events. A fifth of every gazetteer appears only in the test file, so the test
measures generalisation to unseen names, not memory. Deterministic (seed 7).

    python3 scripts/make_ner_corpus.py      # writes data/ner/train.conll and data/ner/test.conll
"""
import pathlib
import random

FIRST = ["Maria", "João", "Ana", "Pedro", "Luisa", "Carlos", "Fernanda", "Rafael", "Beatriz", "Lucas", "Juliana",
         "Mateus", "Camila", "Gabriel", "Larissa", "Thiago", "Sophie", "James", "Emily", "Michael", "Sarah", "David",
         "Laura", "Daniel", "Olivia", "Hans", "Yuki", "Ahmed", "Priya", "Chen", "Isabel", "Miguel", "Helena", "Paulo",
         "Clara", "Victor", "Alice", "Marco", "Elena", "Samuel"]
LAST = ["Silva", "Santos", "Oliveira", "Souza", "Pereira", "Costa", "Almeida", "Ferreira", "Rodrigues", "Gomes",
        "Martins", "Araújo", "Smith", "Johnson", "Brown", "Miller", "Müller", "Tanaka", "Khan", "Patel", "Wang",
        "García", "Rossi", "Dubois", "Novak", "Kowalski", "Nakamura", "Lopez", "Barbosa", "Ribeiro"]
ORG = ["Petrobras", "Embraer", "Banco do Brasil", "Natura", "Vale", "Google", "Microsoft", "the United Nations",
       "the World Bank", "Siemens", "Toyota", "Nestlé", "the Red Cross", "UNICEF", "Itaú Unibanco", "Ambev",
       "the Federal University of Rio Grande do Sul", "the University of São Paulo", "Harvard University",
       "Oxford University", "the European Central Bank", "Reuters", "the BBC", "Globo", "Magazine Luiza", "Nubank",
       "Mercado Livre", "Samsung", "Airbus", "Volkswagen", "the IMF", "Greenpeace", "FIFA", "the Senate",
       "the Ministry of Health", "Fiocruz", "Boeing", "Unilever", "Spotify", "Netflix"]
LOC = ["São Paulo", "Rio de Janeiro", "Porto Alegre", "Brasília", "Salvador", "Recife", "Manaus", "Curitiba",
       "Belo Horizonte", "Lisbon", "Porto", "Madrid", "Paris", "Berlin", "London", "New York", "Tokyo", "Buenos Aires",
       "Santiago", "Lima", "Bogotá", "Mexico City", "Toronto", "Geneva", "Brazil", "Portugal", "Argentina", "Germany",
       "Japan", "the Amazon", "Rio Grande do Sul", "Bahia", "California", "Texas", "Europe", "Africa", "Canada",
       "Chile", "Florianópolis", "Fortaleza"]
MISC = ["the World Cup", "Carnival", "the Olympic Games", "the Nobel Prize", "Portuguese", "Brazilian", "English",
        "the Paris Agreement", "COVID-19", "Black Friday", "the Rock in Rio festival", "Christmas", "the Oscars",
        "Spanish", "German", "the Copa América", "Easter", "the Web Summit", "Japanese", "the G20 summit"]
MONTHS = ["January", "March", "May", "June", "August", "October", "December"]

TEMPLATES = [
    "{PER} works at {ORG} in {LOC} .",
    "{ORG} opened a new office in {LOC} last week .",
    "Yesterday {PER} met {PER} in {LOC} to discuss the budget .",
    "{PER} , a spokesperson for {ORG} , said the deal was signed on Monday .",
    "The {MISC} will be held in {LOC} next year .",
    "{ORG} announced that {PER} will become its new chief executive .",
    "Heavy rain caused floods in {LOC} on Tuesday , according to {ORG} .",
    "{PER} won {MISC} after a long career in {LOC} .",
    "Shares of {ORG} rose 3 percent after the results were published .",
    "{PER} moved from {LOC} to {LOC} in 2019 .",
    "According to {PER} , {ORG} expects to hire 500 people in {LOC} .",
    "The mayor of {LOC} , {PER} , visited {ORG} this morning .",
    "Thousands of fans travelled to {LOC} for {MISC} .",
    "{ORG} and {ORG} signed a partnership to build a factory in {LOC} .",
    "{PER} speaks {MISC} and lives in {LOC} .",
    "Researchers at {ORG} published a study about {MISC} .",
    "I had lunch with {PER} near the station .",
    "The flight from {LOC} to {LOC} was cancelled because of the storm .",
    "{PER} told reporters that {ORG} did nothing wrong .",
    "Tourists crowd the beaches of {LOC} during {MISC} .",
    "{ORG} fined {ORG} for breaking competition rules .",
    "Police in {LOC} arrested two men on Friday .",
    "{PER} and {PER} founded {ORG} in {LOC} .",
    "The government of {LOC} asked {ORG} for a new loan .",
    "She studied at {ORG} before joining {ORG} .",
    "{PER} scored twice as {LOC} beat {LOC} 3-1 .",
    "Prices in {LOC} fell for the third month in a row .",
    "{ORG} will broadcast {MISC} live from {LOC} .",
    "My friend {PER} recommended a restaurant in {LOC} .",
    "The report by {ORG} was presented by {PER} in {MONTH} .",
    "{PER} was born in {LOC} and grew up in {LOC} .",
    "Nobody expected {ORG} to leave {LOC} so soon .",
    "In {MONTH} , {PER} will speak at {MISC} in {LOC} .",
    "{ORG} recalled thousands of cars sold in {LOC} .",
    "The new museum in {LOC} was designed by {PER} .",
    "Volunteers from {ORG} helped families in {LOC} after the fire .",
    "{PER} criticised {ORG} in an interview with {ORG} .",
    "Farmers in {LOC} expect a record harvest this year .",
    "It is the first time {LOC} hosts {MISC} .",
    "Last night {PER} thanked the fans of {LOC} .",
]


def split(names, rng):
    names = names[:]
    rng.shuffle(names)
    cut = max(1, len(names) // 5)
    return names[cut:], names[cut:] + names[:cut]


def person(first, last, rng):
    return f"{rng.choice(first)} {rng.choice(last)}" if rng.random() < 0.7 else rng.choice(first)


def sentence(template, pools, rng):
    tokens, tags = [], []
    for piece in template.split():
        if piece.startswith("{") and piece.endswith("}") or (piece.startswith("{") and "}" in piece):
            kind = piece[1:piece.index("}")]
            if kind == "MONTH":
                tokens.append(rng.choice(MONTHS)); tags.append("O"); continue
            value = person(pools["FIRST"], pools["LAST"], rng) if kind == "PER" else rng.choice(pools[kind])
            words = value.split()
            # A leading "the" is not part of the name.
            if words[0] == "the":
                tokens.append("the"); tags.append("O"); words = words[1:]
            for i, w in enumerate(words):
                tokens.append(w); tags.append(("B-" if i == 0 else "I-") + kind)
        else:
            tokens.append(piece); tags.append("O")
    if tokens[0] == "the":
        tokens[0] = "The"
    return tokens, tags


def write(path, sentences):
    with open(path, "w", encoding="utf-8") as f:
        f.write("-DOCSTART- O\n\n")
        for tokens, tags in sentences:
            for t, g in zip(tokens, tags):
                f.write(f"{t} {g}\n")
            f.write("\n")


def main():
    rng = random.Random(7)
    train_pools, test_pools = {}, {}
    for key, names in [("FIRST", FIRST), ("LAST", LAST), ("ORG", ORG), ("LOC", LOC), ("MISC", MISC)]:
        train_pools[key], test_pools[key] = split(names, rng)
    out = pathlib.Path(__file__).resolve().parent.parent / "data" / "ner"
    out.mkdir(parents=True, exist_ok=True)
    write(out / "train.conll", [sentence(rng.choice(TEMPLATES), train_pools, rng) for _ in range(2000)])
    write(out / "test.conll", [sentence(rng.choice(TEMPLATES), test_pools, rng) for _ in range(400)])
    print("wrote", out / "train.conll", "and", out / "test.conll")


if __name__ == "__main__":
    main()
