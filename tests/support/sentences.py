"""The sentences tests and benchmarks build their documents and vocabularies from.

News-style English and German lines (a few French and Spanish), then lines that cover digits,
punctuation, symbols, quotes and the alphabet with umlauts, so a SentencePiece model trained on them has a
piece for every character the tests type. Plain data: importing it needs no numpy or models.
"""

from __future__ import annotations

_NEWS_LINES_TEXT = r"""
The city council approved the new budget on Tuesday evening.
Heavy rain is expected across the north of the country this weekend.
Scientists have discovered a new species of frog in the rainforest.
The company reported a profit of 4.2 million euros in the third quarter.
Thousands of people gathered in the square to celebrate the victory.
The minister said the reform would take effect on 1 January 2025.
Prices for electricity rose by 12% compared with last year.
Police are asking witnesses to come forward with any information.
The museum will reopen its doors after two years of renovation.
A spokesperson declined to comment on the ongoing investigation.
Researchers at the university published their findings in a journal.
The train from Berlin to Munich was delayed by almost three hours.
Local farmers are worried about the long period of dry weather.
The festival attracts more than 50,000 visitors every summer.
Negotiations between the unions and employers ended without agreement.
The hospital has hired 120 additional nurses since March.
Voters will decide on the proposal in a referendum next month.
The bridge was closed to traffic after engineers found cracks.
Our correspondent reports from the capital, where tension is rising.
The central bank kept interest rates unchanged at 3.75 percent.
Fans waited outside the stadium for hours before the final match.
The author's latest novel tells the story of a family in exile.
Schools in the region will stay closed because of the storm.
The government wants to build 400,000 new homes per year.
He was born in 1962 and studied law in Hamburg and Paris.
"We are not going to give up," she told reporters on Monday.
The report warns that sea levels could rise faster than expected.
Shares in the carmaker fell sharply after the announcement.
The orchestra performed works by Bach, Mozart and Beethoven.
Emergency services responded to the fire at 2:45 a.m.
The airport expects record passenger numbers over the holidays.
Why did the project cost twice as much as planned?
Read more: How the new law affects tenants and landlords.
The quick brown fox jumps over the lazy dog.
Is this the right way to the old town hall?
Yesterday I bought bread, cheese, apples and a bottle of water.
My brother works as a journalist for a small newspaper.
We will meet again next Friday at half past seven.
The children played in the garden until it got dark.
Please send the documents by e-mail before the deadline.
The weather today is sunny with a light wind from the west.
Open-source software is used by millions of developers.
The conference takes place from 3 to 5 June in Vienna.
According to the survey, 63% of respondents support the plan.
The river flooded several villages in the valley overnight.
She won the gold medal in the 200 metres freestyle.
The new smartphone costs $999 and goes on sale in October.
Experts disagree about the causes of the economic slowdown.
The mayor promised better public transport and cleaner streets.
It was the warmest October since records began in 1881.
The film premiered at the festival and received a standing ovation.
Doctors recommend at least 30 minutes of exercise a day.
The suspect was arrested at the border on Saturday morning.
Many young people are moving from rural areas to the cities.
The library offers free courses in English, German and Spanish.
Visit www.example.com/news for updates and live coverage.
Contact us at info@example.org or call +49 30 1234567.
The score was 3-1 after extra time; the coach was delighted.
Question: what is 7 x 8? Answer: 56.
Chapter 4, section 2 (pages 117-132) explains the method.
Der Stadtrat hat am Dienstagabend den neuen Haushalt beschlossen.
Am Wochenende wird im Norden des Landes starker Regen erwartet.
Forscher haben im Regenwald eine neue Froschart entdeckt.
Das Unternehmen meldete im dritten Quartal einen Gewinn von 4,2 Millionen Euro.
Tausende Menschen versammelten sich auf dem Platz, um den Sieg zu feiern.
Der Minister sagte, die Reform trete am 1. Januar 2025 in Kraft.
Die Strompreise stiegen im Vergleich zum Vorjahr um 12 Prozent.
Die Polizei bittet Zeugen, sich mit Hinweisen zu melden.
Das Museum öffnet nach zwei Jahren Renovierung wieder seine Türen.
Eine Sprecherin wollte sich zu den laufenden Ermittlungen nicht äußern.
Der Zug von Berlin nach München hatte fast drei Stunden Verspätung.
Die Landwirte sind wegen der langen Trockenheit besorgt.
Das Festival zieht jeden Sommer mehr als 50.000 Besucher an.
Die Verhandlungen zwischen Gewerkschaften und Arbeitgebern blieben ohne Einigung.
Das Krankenhaus hat seit März 120 zusätzliche Pflegekräfte eingestellt.
Die Wähler entscheiden im nächsten Monat in einer Volksabstimmung über den Vorschlag.
Die Brücke wurde für den Verkehr gesperrt, nachdem Ingenieure Risse gefunden hatten.
Die Zentralbank ließ die Leitzinsen unverändert bei 3,75 Prozent.
Die Fans warteten stundenlang vor dem Stadion auf das Endspiel.
Der neue Roman der Autorin erzählt die Geschichte einer Familie im Exil.
Die Schulen in der Region bleiben wegen des Sturms geschlossen.
Die Regierung will jedes Jahr 400.000 neue Wohnungen bauen.
Er wurde 1962 geboren und studierte Jura in Hamburg und Paris.
„Wir werden nicht aufgeben“, sagte sie am Montag vor Journalisten.
Der Bericht warnt, dass der Meeresspiegel schneller steigen könnte als erwartet.
Die Aktien des Autobauers fielen nach der Ankündigung deutlich.
Das Orchester spielte Werke von Bach, Mozart und Beethoven.
Die Feuerwehr rückte um 2:45 Uhr zu dem Brand aus.
Der Flughafen erwartet über die Feiertage einen Passagierrekord.
Warum hat das Projekt doppelt so viel gekostet wie geplant?
Lesen Sie auch: Was das neue Gesetz für Mieter und Vermieter bedeutet.
Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich.
Ist das der richtige Weg zum alten Rathaus?
Gestern habe ich Brot, Käse, Äpfel und eine Flasche Wasser gekauft.
Mein Bruder arbeitet als Journalist für eine kleine Zeitung.
Wir treffen uns nächsten Freitag um halb acht wieder.
Die Kinder spielten im Garten, bis es dunkel wurde.
Bitte schicken Sie die Unterlagen vor Ablauf der Frist per E-Mail.
Das Wetter ist heute sonnig bei leichtem Wind aus Westen.
Die Konferenz findet vom 3. bis 5. Juni in Wien statt.
Laut der Umfrage unterstützen 63 % der Befragten den Plan.
Der Fluss überflutete über Nacht mehrere Dörfer im Tal.
Sie gewann die Goldmedaille über 200 Meter Freistil.
Das neue Smartphone kostet 999 Euro und kommt im Oktober in den Handel.
Experten sind sich über die Ursachen der wirtschaftlichen Abkühlung uneinig.
Der Bürgermeister versprach besseren Nahverkehr und sauberere Straßen.
Es war der wärmste Oktober seit Beginn der Aufzeichnungen im Jahr 1881.
Ärzte empfehlen mindestens 30 Minuten Bewegung pro Tag.
Der Verdächtige wurde am Samstagmorgen an der Grenze festgenommen.
Viele junge Menschen ziehen vom Land in die Städte.
Die Bibliothek bietet kostenlose Kurse in Englisch, Deutsch und Spanisch an.
Über die Öffnungszeiten informiert die Gemeinde auf ihrer Website.
Größere Städte müssen mehr Geld für Straßen und Schulen ausgeben.
Der Übergang zur neuen Software verlief ohne größere Störungen.
Das Ergebnis lautete 3:1 nach Verlängerung; der Trainer war begeistert.
Frage: Was ist 7 × 8? Antwort: 56.
Kapitel 4, Abschnitt 2 (Seiten 117–132) erklärt die Methode.
Die Straße ist wegen Bauarbeiten bis Ende Mai gesperrt – Umleitungen sind ausgeschildert.
Weitere Informationen gibt es unter www.beispiel.de/nachrichten.
Die Grünen fordern mehr Investitionen in Bus und Bahn.
Im Süden Bayerns fiel in der Nacht der erste Schnee.
Die Mannschaft verlor das Spiel trotz einer frühen Führung.
Was kostet ein Ticket für das Konzert am Samstag?
Das Gericht wies die Klage als unbegründet ab.
Während der Pandemie arbeiteten viele Beschäftigte von zu Hause aus.
Die Ausstellung zeigt Gemälde aus dem 19. Jahrhundert.
Straßenbahnen fahren am Sonntag nur alle 20 Minuten.
Le président a annoncé une réforme des retraites.
El gobierno presentó un nuevo plan económico en Madrid.
Café, crème brûlée and jalapeño: a menu with ç, é, è, à and ñ.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000 3.14 2,718 -42 +7 1/2
Symbols: ! " # $ % & ' ( ) * + , - . / : ; < = > ? @ [ \ ] ^ _ ` { | } ~
Quotes and dashes: ‚einfach‘ „doppelt“ “double” ‘single’ – — … € £ § °
ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz ÄÖÜ äöüß
Q: Who? A: Nobody. X-ray, yacht, quiz, jazz, zebra, vexing, KZ.
Tel. 030/987 65 43, Fax -44; ISBN 978-3-16-148410-0.
Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday.
Montag, Dienstag, Mittwoch, Donnerstag, Freitag, Samstag, Sonntag.
January February March April May June July August September October November December
"""

NEWS_LINES: list[str] = [line for line in _NEWS_LINES_TEXT.splitlines() if line]

COPY_CORPUS: list[str] = NEWS_LINES + [line.swapcase() for line in NEWS_LINES]
"""English and German news-style lines with digits and punctuation, each also swap-cased.

The swap-cased half makes a vocabulary trained on it close to case-symmetric, so
``copymodel.swapcase_mapping`` moves most pieces and a mapped copy model visibly "translates".
"""
