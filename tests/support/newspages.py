"""Articles laid out the way scraped news pages come out of a crawler, in several languages.

Each page repeats its headline, then a standfirst, byline, reading time, date, photo caption
with a credit, and share prompts between the paragraphs. ``BOILERPLATE`` lists, per language,
the lines that a summary must never pick. The texts are written for these tests.
"""

from __future__ import annotations

PAGES: dict[str, str] = {
    "en": """Harbour city votes to close its old coal power station early

Harbour city votes to close its old coal power station early
The council decided on Tuesday that the coal plant on the northern pier will shut down three years ahead of schedule.
By Anna Whitfield and Tom Baker
3 min read
28 April, 2020
Workers leave the coal power station on the northern pier after the morning shift [AFP]
The city council of Harbour voted on Tuesday to close the coal power station on the northern pier three years earlier than planned, after a long debate about jobs, prices and clean air.

The power station has supplied the city with electricity and district heating since the nineteen sixties. It employs about four hundred people, most of whom live in the neighbourhoods around the harbour.

Click to enlarge

Under the plan approved by the council, the coal plant will be replaced by a large heat pump that draws warmth from the sea water, together with wind and solar power bought from the regional grid. The council expects the new heating system to be cheaper for households within a decade.
Share this article
Trade unions said the workers of the coal plant must not pay the price for the early closure. The council promised that every worker will be offered a job in the new heating plant or a paid training programme.
Photo: Harbour City Press Office
Doctors in the harbour districts welcomed the vote. They said that the smoke from the coal plant has caused breathing problems for children in the neighbourhoods near the pier for decades.
Follow us on Twitter
The closure still needs the approval of the national energy regulator, which has to confirm that the regional grid can supply the city without the coal plant during cold winters.
Read more: How other port cities replaced their coal plants
""",
    "de": """Stadtrat beschließt den Bau einer neuen Brücke über den Fluss

Stadtrat beschließt den Bau einer neuen Brücke über den Fluss
Nach jahrelangem Streit soll die neue Brücke die Altstadt mit dem Bahnhof verbinden.
Von Katrin Hoffmann
Lesezeit: 4 Minuten
Veröffentlicht am 12. März 2021, 14:30 Uhr
Die alte Brücke über den Fluss ist seit dem Winter für Lastwagen gesperrt. Foto: dpa
Der Stadtrat hat am Donnerstag mit großer Mehrheit den Bau einer neuen Brücke über den Fluss beschlossen, die die Altstadt mit dem Bahnhof verbinden soll.

Die alte Brücke stammt aus dem Jahr 1954 und ist seit dem vergangenen Winter für Lastwagen gesperrt, weil Gutachter Risse in den Pfeilern gefunden haben. Seitdem müssen Busse und Lieferwagen einen Umweg von fast zehn Kilometern fahren.

Zum Vergrößern klicken

Die neue Brücke soll zwei Spuren für Autos, eine Spur für Busse und breite Wege für Fußgänger und Radfahrer bekommen. Die Kosten werden auf rund achtzig Millionen Euro geschätzt, von denen das Land die Hälfte übernehmen will.
Artikel teilen
Anwohner der Altstadt befürchten jahrelangen Baulärm und mehr Verkehr in den engen Straßen. Die Stadt verspricht, die Bauarbeiten in Abschnitte zu teilen und nachts nicht zu arbeiten.
Bild: Stadtverwaltung
Der Bau der neuen Brücke soll im nächsten Frühjahr beginnen und nach drei Jahren abgeschlossen sein, wenn das Land die Förderung rechtzeitig bewilligt.
Mehr zum Thema: Wie andere Städte ihre Brücken sanieren
""",
    "fr": """La ville ouvre une nouvelle bibliothèque dans l'ancienne gare

La ville ouvre une nouvelle bibliothèque dans l'ancienne gare
Après quatre ans de travaux, l'ancienne gare accueille désormais la plus grande bibliothèque de la région.
Par Claire Dubois
Temps de lecture : 3 min
Publié le 5 octobre 2022 à 09h15
Les lecteurs découvrent la grande salle de la nouvelle bibliothèque dans l'ancienne gare (Photo AFP)
La nouvelle bibliothèque municipale a ouvert ses portes samedi dans l'ancienne gare, après quatre années de travaux et un long débat sur l'avenir du bâtiment.

La gare avait été fermée aux voyageurs en 1998, et le bâtiment était resté vide pendant plus de vingt ans. Plusieurs projets d'hôtel et de centre commercial avaient été abandonnés faute d'investisseurs.

Cliquez pour agrandir

La bibliothèque propose plus de deux cent mille livres, une salle pour les enfants, des ordinateurs en libre accès et un café installé dans l'ancien hall des billets. Elle sera ouverte tous les jours, y compris le dimanche.
Partager cet article
Les habitants du quartier se réjouissent de voir revivre la gare, mais certains regrettent que la bibliothèque ait coûté deux fois plus cher que prévu.
Crédit photo : Mairie
La ville espère que la nouvelle bibliothèque attirera aussi des visiteurs des communes voisines et fera revivre le quartier de la gare.
Lire aussi : Les bibliothèques de la région en chiffres
""",
    "es": """El ayuntamiento aprueba un nuevo parque junto al río

El ayuntamiento aprueba un nuevo parque junto al río
El parque ocupará los terrenos de una antigua fábrica textil abandonada desde hace décadas.
Por Javier Morales
Lectura: 2 min
14 de junio de 2023
Vista aérea de los terrenos de la antigua fábrica textil junto al río. EFE/Archivo
El pleno del ayuntamiento aprobó el jueves la construcción de un gran parque junto al río en los terrenos de una antigua fábrica textil.

La fábrica cerró en los años ochenta y desde entonces sus naves han permanecido vacías. Los vecinos llevan años pidiendo que los terrenos se conviertan en una zona verde para el barrio.

Haga clic para ampliar

El proyecto incluye un paseo a lo largo del río, zonas de juego para niños, un huerto urbano y un pequeño museo sobre la historia de la fábrica. Las obras costarán unos doce millones de euros.
Compartir en Facebook
Los grupos de la oposición apoyaron el parque, aunque criticaron que el ayuntamiento no haya previsto viviendas asequibles en los terrenos de la antigua fábrica.
Foto: Ayuntamiento
Las obras del parque comenzarán el próximo otoño y deberían terminar en dos años, según el calendario aprobado por el pleno.
Leer más: Los parques que transformaron la ciudad
""",
}

BOILERPLATE: dict[str, tuple[str, ...]] = {
    "en": (
        "By Anna Whitfield and Tom Baker",
        "3 min read",
        "28 April, 2020",
        "Workers leave the coal power station on the northern pier after the morning shift [AFP]",
        "Click to enlarge",
        "Share this article",
        "Photo: Harbour City Press Office",
        "Follow us on Twitter",
        "Read more: How other port cities replaced their coal plants",
    ),
    "de": (
        "Von Katrin Hoffmann",
        "Lesezeit: 4 Minuten",
        "Veröffentlicht am 12. März 2021, 14:30 Uhr",
        "Die alte Brücke über den Fluss ist seit dem Winter für Lastwagen gesperrt. Foto: dpa",
        "Zum Vergrößern klicken",
        "Artikel teilen",
        "Bild: Stadtverwaltung",
        "Mehr zum Thema: Wie andere Städte ihre Brücken sanieren",
    ),
    "fr": (
        "Par Claire Dubois",
        "Temps de lecture : 3 min",
        "Publié le 5 octobre 2022 à 09h15",
        "Les lecteurs découvrent la grande salle de la nouvelle bibliothèque dans l'ancienne gare (Photo AFP)",
        "Cliquez pour agrandir",
        "Partager cet article",
        "Crédit photo : Mairie",
        "Lire aussi : Les bibliothèques de la région en chiffres",
    ),
    "es": (
        "Por Javier Morales",
        "Lectura: 2 min",
        "14 de junio de 2023",
        "Vista aérea de los terrenos de la antigua fábrica textil junto al río. EFE/Archivo",
        "Haga clic para ampliar",
        "Compartir en Facebook",
        "Foto: Ayuntamiento",
        "Leer más: Los parques que transformaron la ciudad",
    ),
}

HEADLINES: dict[str, str] = {lang: page.split("\n", 1)[0] for lang, page in PAGES.items()}
